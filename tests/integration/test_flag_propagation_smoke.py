"""Smoke test of the flag propagation bench: one Signup and one Login container (separate processes
importing the real handlers), max age 1 s, one real `auth-migrate rollback --emergency`: the JSON shape,
the audit rows the CLI wrote, and no database left behind. Not a timing test: whether the bound holds on
a busy machine is what the bench itself reports."""

from __future__ import annotations

import json

import psycopg
import pytest

from bench import flag_propagation
from tests.integration.plugins.postgres import ADMIN_URL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_flags\\_%'")}


def test_one_container_each_obeys_a_real_emergency_rollback(capsys: pytest.CaptureFixture[str]) -> None:
    before = _bench_databases()
    argv = ["--max-age", "1", "--containers", "1", "--rounds", "2", "--database-url", ADMIN_URL, "--json"]

    code = flag_propagation.main(argv)
    result = json.loads(capsys.readouterr().out)

    assert code == (0 if result["ok"] else 1)
    assert result["max_age_s"] == 1
    assert result["bound_s"] == 2.0
    assert [r["round"] for r in result["rounds"]] == [1, 2]
    for r in result["rounds"]:
        # The CLI narrows first: the primary switch, then the canary, then the mode.
        assert r["ssm_writes"] == ["USE_BETTER_AUTH", "CANARY_ENABLED", "MIGRATION_MODE"]
        assert set(r["per_container_s"]) == {"signup-1", "login-1"}
        assert all(v is None or isinstance(v, float | int) for v in r["per_container_s"].values())
        assert r["cli_seconds"] > 0
        assert any("MIGRATION_MODE: dual_write -> supabase_only" in line for line in r["cli_stdout"])
    measured = [v for r in result["rounds"] for v in r["per_container_s"].values() if v is not None]
    assert result["max_s"] == (max(measured) if measured else None)
    # Every container is the real handler module with the flag source its resolver calls per request.
    info = result["container_info"]
    assert set(info) == {"signup-1", "login-1"}
    for cid, entry in info.items():
        assert entry["source"] == "SsmFlagSource", cid
        assert entry["max_age_s"] == 1
        assert entry["module"].startswith("_local_lambda_" + cid.split("-")[0].capitalize())
        assert entry["requests"] > 0
        assert entry["ssm_fetches"] >= 1
    assert info["signup-1"]["status"] == 400  # the cold invoke: refused at the body check
    assert info["login-1"]["status"] == 415
    # Three audit rows per rollback, in the bench's state database; none spooled.
    assert result["audit_rows"] == {"total": 6, "from_bench": 6}
    assert result["audit_spooled"] is False
    assert _bench_databases() == before
    assert "bound FLAGS_MAX_AGE_S + 1 s" in flag_propagation.format_table(result)
