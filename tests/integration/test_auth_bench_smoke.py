"""Smoke test of the signup/login benches: tiny runs through their command lines print the JSON shape
operators compare over time, and no acknowledged user is lost or doubled. Not a timing test: the
figures at this size mean nothing."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from bench import auth_latency, dual_write_faults
from tests.integration.plugins.postgres import ADMIN_URL

pytestmark = pytest.mark.slow


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_auth\\_%'")}


def _run(main: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main([*argv, "--json", "--database-url", ADMIN_URL])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_tiny_fault_run_loses_and_doubles_nobody(capsys: pytest.CaptureFixture[str]) -> None:
    before = _bench_databases()

    code, result = _run(dual_write_faults.main, ["--signups", "20", "--fail-rate", "0.5", "--concurrency", "2"], capsys)

    assert code == 0, result
    assert result["lost"] == 0
    assert result["duplicates"] == 0
    assert [(v["failing"], v["primary"]) for v in result["variants"]] == [
        ("supabase", "supabase"),
        ("supabase", "better_auth"),
    ]
    for variant in result["variants"]:
        assert variant["signups"] == 20
        assert variant["acknowledged"] + variant["refused"] == 20
        assert sum(variant["refused_by_kind"].values()) == variant["refused"]
        assert variant["lost_at_once"] == variant["lost"] == variant["duplicates"] == 0
        assert variant["gaps_repaired"] + variant["gaps_conflict"] == variant["gaps_queued"]
        assert variant["gaps_not_closed_after_drain"] == 0
        assert set(variant["seconds"]) == {"signups", "drain", "wall"}
    # GoTrue failing half its admin creates: some Better-Auth-primary signups left a gap, and it was closed.
    better_auth_primary = result["variants"][1]
    assert better_auth_primary["gaps_recorded"] > 0
    assert better_auth_primary["repair_outcomes"].get("created_supabase", 0) > 0
    assert "| supabase failing, primary better_auth | 20 |" in dual_write_faults.format_table(result)
    assert not (_bench_databases() - before)  # the bench dropped what it created


def test_tiny_latency_run_reports_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    before = _bench_databases()

    code, result = _run(auth_latency.main, ["--requests", "5", "--login-requests", "2", "--warmup", "1"], capsys)

    assert code == 0, result["errors"]
    assert set(result["signup"]) == set(auth_latency.SIGNUP_VARIANTS)
    for name in auth_latency.SIGNUP_VARIANTS:
        assert result["signup"][name]["n"] == 5
        assert 0 < result["signup"][name]["median_ms"] <= result["signup"][name]["p95_ms"]
    for primary in ("supabase", "better_auth"):
        assert result["ratios"][f"dual_write_primary_{primary}_over_slower"] > 0
        assert result["ratios"][f"dual_write_primary_{primary}_over_sum"] > 0
    assert result["gaps_after_signups"] == 0
    hung = result["hung_primary_login"]
    for name, secondary in (
        ("dual_write_primary_supabase_hung", "better_auth"),
        ("dual_write_primary_better_auth_hung", "supabase"),
    ):
        assert hung[name]["served_by"] == {secondary: 2}
        # The fallback waited for the hung primary's timeout, but not much longer.
        assert hung[name]["max_ms"] >= result["timeout_ms"]
        assert hung[name]["max_ms"] < 30_000
    assert "dual_write_primary_supabase_hung" in auth_latency.format_table(result)
    assert not (_bench_databases() - before)
