"""The admin API end to end through `auth-migrate local api` (the template's Admin function over HTTP, on
the local stack: real Postgres, real Better-Auth server, GoTrue stand-in, moto SSM), and the CLI steering
the same stack: every phase's flag pair lands in SSM, and Signup obeys it once the flag cache has aged."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from auth_migration.engine import start_migration
from auth_migration.engine.plan import StartRequest
from auth_migration_ops.cli.main import main
from auth_migration_ops.local.api import LOCAL_IAM_USER_ARN, LocalApi
from auth_migration_ops.local.stack import LocalStack
from tests.integration.plugins.engine import InlineEngine

PASSWORD = "correct horse battery"
#: The functions re-read the flags this often here (the template default is 10 s).
MAX_AGE_S = 1
#: The reference document's mode / primary pair of each phase.
PHASE_PAIRS = {
    1: ("supabase_only", "false"),
    2: ("dual_write", "false"),
    3: ("dual_write", "true"),
    4: ("better_auth_only", "true"),
}
#: Where a signup lands in each phase: (system that answered, in Supabase, in Better-Auth).
LANDS = {
    1: ("supabase", True, False),
    2: ("supabase", True, True),
    3: ("better_auth", True, True),
    4: ("better_auth", False, True),
}


@pytest.fixture
def local(make_database: Callable[[], str], better_auth_installed: None) -> Iterator[tuple[LocalStack, LocalApi]]:
    stack = LocalStack(environ={}, database_url=make_database(), log=lambda _text: None).start()
    try:
        api = LocalApi(
            host="127.0.0.1",
            port=0,
            env_overrides={**stack.env_overrides, "FLAGS_MAX_AGE_S": str(MAX_AGE_S)},
            resource_values=stack.resource_values,
            quiet=True,
            errors=io.StringIO(),
        ).start()
        try:
            yield stack, api
        finally:
            api.stop()
    finally:
        stack.stop()


def stored(stack: LocalStack) -> dict[str, str]:
    assert stack.aws is not None
    ssm = stack.aws.client("ssm")
    params = ssm.get_parameters_by_path(Path=stack.parameter_prefix.rstrip("/"), WithDecryption=True)["Parameters"]
    return {p["Name"].removeprefix(stack.parameter_prefix): p["Value"] for p in params}


def signup_lands(stack: LocalStack, client: httpx.Client, email: str) -> tuple[str, bool, bool]:
    # Past the functions' flag cache: the change must be obeyed by now.
    time.sleep(MAX_AGE_S + 0.2)
    reply = client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    with psycopg.connect(stack.database_url) as conn:
        in_supabase = conn.execute("SELECT count(*) FROM auth.users WHERE email = %s", (email,)).fetchone()
        in_better_auth = conn.execute('SELECT count(*) FROM "user" WHERE email = %s', (email,)).fetchone()
    assert in_supabase is not None and in_better_auth is not None
    return reply.json()["system"], in_supabase[0] == 1, in_better_auth[0] == 1


def audit_rows(stack: LocalStack) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.database_url) as conn:
        return conn.execute("SELECT flag, new_value, source, actor, forced FROM flag_changes ORDER BY id").fetchall()


@pytest.mark.slow
def test_phases_one_to_four_through_the_admin_api_each_set_the_pair_and_signup_obeys(
    local: tuple[LocalStack, LocalApi],
) -> None:
    stack, api = local
    with httpx.Client(base_url=api.url, timeout=30) as client:
        view = client.get("/admin/rollout")
        assert view.status_code == 200, view.text
        assert view.json()["phase"] == 2  # the local stack's flags: dual-write, Supabase primary
        assert {f["flag"] for f in view.json()["flags"]} >= {"MIGRATION_MODE", "USE_BETTER_AUTH"}
        assert view.json()["health"]["auto_rollback"]["would"] == "idle"

        for number in (1, 2, 3):
            changed = client.put("/admin/rollout", json={"phase": number, "reason": f"phase {number} test"})
            assert changed.status_code == 200, changed.text
            assert (changed.json()["phase"], changed.json()["forced"]) == (number, False)
            mode, primary = stored(stack)["MIGRATION_MODE"], stored(stack)["USE_BETTER_AUTH"]
            assert (mode, primary) == PHASE_PAIRS[number]
            assert signup_lands(stack, client, f"phase{number}@example.com") == LANDS[number]

        # Phase 4 stops writing Supabase: refused until a bulk migration has completed, and nothing written.
        refused = client.put("/admin/rollout", json={"phase": 4, "reason": "too early"})
        assert refused.status_code == 409, refused.text
        assert any("no bulk migration" in b["reason"] for b in refused.json()["blockers"])
        assert stored(stack)["MIGRATION_MODE"] == "dual_write"

        engine = InlineEngine(stack.database_url)
        try:
            started = start_migration(StartRequest(source="supabase", batch_size=100), engine.context())
            engine.drain()
        finally:
            engine.close()
        report = client.get(f"/admin/migrations/{started.migration_id}")
        assert report.status_code == 200, report.text
        assert report.json()["status"] == "completed"
        assert report.json()["processed_count"] == 3  # the three users signed up above

        preview = client.put("/admin/rollout", json={"phase": 4, "reason": "look first", "dry_run": True})
        assert preview.json()["applied"] is False
        assert [c["flag"] for c in preview.json()["changes"]] == ["MIGRATION_VALIDATION", "MIGRATION_MODE"]
        assert stored(stack)["MIGRATION_MODE"] == "dual_write"

        changed = client.put("/admin/rollout", json={"phase": 4, "reason": "cutover"})
        assert changed.status_code == 200, changed.text
        assert (stored(stack)["MIGRATION_MODE"], stored(stack)["USE_BETTER_AUTH"]) == PHASE_PAIRS[4]
        assert signup_lands(stack, client, "phase4@example.com") == LANDS[4]

        assert client.get("/admin/migrations/" + "x" * 101).status_code == 400
        assert client.get("/admin/migrations/no-such-migration").status_code == 404
        bad = client.put("/admin/rollout", json={"flags": {"CANARY_PERCENTAGE": 250}, "reason": "typo"})
        assert bad.status_code == 400
        assert "outside 0..100" in bad.json()["message"]

    rows = audit_rows(stack)
    assert rows and all(source == "admin-api" and actor == LOCAL_IAM_USER_ARN for _f, _n, source, actor, _ in rows)
    assert not any(forced for *_rest, forced in rows)


@pytest.mark.slow
def test_a_phase_set_by_the_cli_is_what_signup_does_after_the_max_age(
    local: tuple[LocalStack, LocalApi], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack, api = local
    for key, value in stack.env_overrides.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AUTH_MIGRATE_AUDIT_SPOOL", str(tmp_path / "spool.jsonl"))
    with httpx.Client(base_url=api.url, timeout=30) as client:
        assert main(["phase", "3", "--reason", "cli test", "--yes"]) == 0
        assert signup_lands(stack, client, "cli3@example.com") == LANDS[3]
        assert main(["rollback", "--emergency", "--reason", "cli test"]) == 0
        assert (stored(stack)["MIGRATION_MODE"], stored(stack)["USE_BETTER_AUTH"]) == PHASE_PAIRS[1]
        assert signup_lands(stack, client, "cli1@example.com") == LANDS[1]
        view = client.get("/admin/rollout").json()
    assert view["phase"] == 1
    assert {row[2] for row in audit_rows(stack)} == {"cli"}
