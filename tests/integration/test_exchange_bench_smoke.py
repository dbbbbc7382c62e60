"""Smoke test of the session exchange bench: a tiny run through its command line prints the JSON shape, every
exchanged session is one Better-Auth holds, and the bench's database is dropped. Not a timing test."""

from __future__ import annotations

import json

import psycopg
import pytest

from bench import exchange_latency
from tests.integration.plugins.postgres import ADMIN_URL

pytestmark = pytest.mark.slow


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_auth\\_%'")}


def test_a_tiny_exchange_run_makes_sessions_better_auth_holds(capsys: pytest.CaptureFixture[str]) -> None:
    before = _bench_databases()

    code = exchange_latency.main(["--users", "3", "--warmup", "1", "--json", "--database-url", ADMIN_URL])
    result = json.loads(capsys.readouterr().out)

    assert code == 0, result
    assert set(result["latency"]) == set(exchange_latency.VARIANTS)
    assert all(result["latency"][name]["n"] == 3 for name in exchange_latency.VARIANTS)
    # Three exchange variants over 3 + 1 users each: every session they made is in Better-Auth's table.
    assert result["sessions_made"] == result["sessions_held_by_better_auth"] == 12
    assert set(result["ratios"]) == {f"{name}_over_sign_in" for name in exchange_latency.VARIANTS[1:]}
    assert _bench_databases() == before


def test_a_bad_user_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        exchange_latency.main(["--users", "0"])
    assert exited.value.code == 2
    assert "--users must be at least 1" in capsys.readouterr().err
