"""Smoke test of the AutoRollback window bench: a tiny table gives the JSON shape operators compare over
time, the EXPLAIN of the very statement primary_health sends, one checker run that purges the expired
events, and no database left behind. Not a timing test: the figures at this size mean nothing."""

from __future__ import annotations

import json

import psycopg
import pytest

from bench import auto_rollback_window
from tests.integration.plugins.postgres import ADMIN_URL

pytestmark = pytest.mark.timeout(300)


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")}


def test_tiny_window_bench_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    before = _bench_databases()
    argv = ["--rows", "20000", "--expired-rows", "2000", "--repeat", "3", "--database-url", ADMIN_URL]

    # --without-index: the rolled-back DROP INDEX path, on an index the shipped schema has.
    code = auto_rollback_window.main([*argv, "--without-index", "auth_events_health_idx", "--json"])
    result = json.loads(capsys.readouterr().out)

    assert code == (0 if result["ok"] else 1)
    assert result["data"]["events"] == 22_000
    assert result["data"]["expired_events"] == 2_000
    assert "auth_events_recent_idx" in result["data"]["indexes"]
    assert set(result["variants"]) == {"as_shipped", "without_auth_events_health_idx"}
    for variant in result["variants"].values():
        for system in ("better_auth", "supabase"):
            stats = variant["per_system_ms"][system]
            assert set(stats) == {"min", "median", "p95", "max"}
            assert 0 < stats["min"] <= stats["median"] <= stats["p95"] <= stats["max"]
            assert variant["first_call_ms"][system] > 0
            assert set(variant["window_figures"][system]) == {
                "requests",
                "user_errors",
                "system_failures",
                "error_rate",
            }
            assert "FROM auth_events" not in variant["explain"][system]  # a plan, not the statement
            assert "Execution Time" in variant["explain"][system]
        assert isinstance(variant["within_bound"], bool)
    assert "auth_events_health_idx" not in result["variants"]["without_auth_events_health_idx"]["explain"]["supabase"]
    auto = result["auto_rollback"]
    assert auto["seconds"] > 0
    # 2,000 expired events, under one purge batch: the run deletes all of them, whatever it decides.
    assert auto["purged"] == 2_000
    assert auto["action"] in {"hold", "healthy", "rollback", "advance"}
    assert "Delete on auth_events" in auto["purge_explain"]
    assert result["reference_time"] == auto_rollback_window.REFERENCE.isoformat()
    assert _bench_databases() == before  # the bench dropped what it created

    # The table form of the same run.
    assert "bound: p95 <= 50 ms" in auto_rollback_window.format_table(result)
