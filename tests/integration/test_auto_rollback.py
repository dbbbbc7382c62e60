"""The AutoRollback function as template.yaml defines it, invoked in-process with its schedule event,
against moto SSM and the real state database: it steps back on a breach and audits it, then writes
nothing; it holds below the minimum sample, on wrong-password storms and on shared outages; overlapping
runs do nothing twice; old auth events are purged.

Events are written as the Signup/Login functions write them, stamped by the database clock the
function's window is measured against (the wall clock, as in Lambda)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auth_migration.flags import Flags, MigrationMode
from auth_migration_ops.local.aws import LocalAws, put_parameters
from auth_migration_ops.local.invoke import invoke_function, load_event
from tests.integration.plugins.dual_write import DualWriteStack

SCHEDULE = load_event(Path(__file__).resolve().parents[2] / "events" / "auto_rollback" / "schedule.json")
PHASE_2_CANARY = {
    "MIGRATION_MODE": "dual_write",
    "USE_BETTER_AUTH": "false",
    "CANARY_ENABLED": "true",
    "CANARY_PERCENTAGE": "10",
    "ROLLBACK_MIN_SAMPLE": "100",
}


class Checker:
    def __init__(self, aws: LocalAws, db: str) -> None:
        self.aws, self.db, self.prefix = aws, db, f"/auth-migration-{uuid.uuid4().hex[:8]}/dev/"

    def flags(self, **values: str) -> None:
        put_parameters(self.aws.client("ssm"), self.prefix, values)

    def stored(self) -> dict[str, str]:
        params = self.aws.client("ssm").get_parameters_by_path(Path=self.prefix.rstrip("/"))["Parameters"]
        return {p["Name"].removeprefix(self.prefix): p["Value"] for p in params}

    def events(
        self, primary: str, n: int, *, failing: int = 0, kind: str = "unavailable", age: str = "0", answered: str = ""
    ) -> None:
        """n events Better-Auth or Supabase answered first; `failing` of them failed with `kind`;
        `answered`: the system that finally answered (another one: a fallback)."""
        with psycopg.connect(self.db) as conn:
            conn.execute(
                """INSERT INTO auth_events (occurred_at, operation, system, mode, canary, success, error_kind,
                                            latency_ms, primary_system)
                   SELECT now() - %s::interval, 'login', %s, 'dual_write', %s, i > %s,
                          CASE WHEN i <= %s THEN %s END, 40, %s
                   FROM generate_series(1, %s) AS i""",
                (f"{age} seconds", answered or primary, primary == "better_auth", failing, failing, kind, primary, n),
            )

    def run(self) -> dict[str, Any]:
        env = {
            **self.aws.env(),
            "PARAMETER_PREFIX": self.prefix,
            "NEW_DATABASE_URL": self.db,
            "OLD_DATABASE_URL": self.db,
            "BETTER_AUTH_DATABASE_URL": self.db,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        reply: dict[str, Any] = invoke_function(
            "AutoRollback", SCHEDULE, env_overrides=env, resource_values={"Prefix": self.prefix}
        )
        return reply

    def audit(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db) as conn:
            return conn.execute(
                "SELECT flag, old_value, new_value, source, actor, details FROM flag_changes ORDER BY id"
            ).fetchall()


@pytest.fixture
def checker(local_aws: LocalAws, migration_db: str) -> Checker:
    made = Checker(local_aws, migration_db)
    made.flags(**PHASE_2_CANARY)
    return made


def test_a_failing_canary_is_rolled_back_once_and_audited_with_the_figures(checker: Checker) -> None:
    checker.events("better_auth", 150, failing=30)

    first = checker.run()

    assert first["action"] == "rollback"
    assert checker.stored()["CANARY_ENABLED"] == "false"
    ((flag, old, new, source, actor, details),) = checker.audit()
    assert (flag, old, new, source, actor) == ("CANARY_ENABLED", "true", "false", "auto-rollback", "auto-rollback")
    assert details["better_auth"] == {"requests": 150, "user_errors": 0, "system_failures": 30, "error_rate": 0.2}

    second = checker.run()  # the same failing window: already rolled back, nothing to watch
    assert second["action"] == "idle"
    assert len(checker.audit()) == 1


def test_fallbacks_count_against_the_system_that_failed_first(checker: Checker) -> None:
    checker.events("better_auth", 120, answered="supabase")  # every user got in, through Supabase
    assert checker.run()["action"] == "rollback"
    assert checker.stored()["CANARY_ENABLED"] == "false"


def test_phase_three_steps_back_to_phase_two(checker: Checker) -> None:
    checker.flags(USE_BETTER_AUTH="true", CANARY_ENABLED="false")
    checker.events("better_auth", 400, failing=100, kind="timeout")
    assert checker.run()["action"] == "rollback"
    flags = checker.stored()
    assert (flags["MIGRATION_MODE"], flags["USE_BETTER_AUTH"]) == ("dual_write", "false")
    assert [row[0] for row in checker.audit()] == ["USE_BETTER_AUTH"]  # the canary was off already


@pytest.mark.parametrize(
    ("n", "failing", "kind"),
    [(60, 60, "unavailable"), (800, 780, "invalid_credentials")],
    ids=["below-the-minimum-sample", "wrong-password-storm"],
)
def test_what_is_not_a_breach_writes_nothing(checker: Checker, n: int, failing: int, kind: str) -> None:
    checker.events("better_auth", n, failing=failing, kind=kind)
    assert checker.run()["action"] in ("hold", "healthy")
    assert checker.stored()["CANARY_ENABLED"] == "true"
    assert checker.audit() == []


def test_a_shared_outage_holds_and_alerts_instead_of_rolling_back(checker: Checker) -> None:
    checker.events("better_auth", 150, failing=40)
    checker.events("supabase", 1_500, failing=400)
    reply = checker.run()
    assert (reply["action"], reply["alert"]) == ("hold", True)
    assert "shared outage" in reply["reason"]
    assert checker.audit() == []


def test_events_outside_the_window_do_not_count_and_old_ones_are_purged(checker: Checker) -> None:
    checker.events("better_auth", 300, failing=300, age=str(10 * 60))  # ten minutes ago: outside 5 min
    checker.events("better_auth", 50, age=str(40 * 24 * 3600))  # past the 30-day retention
    assert checker.run()["action"] == "hold"
    with psycopg.connect(checker.db) as conn:
        left = conn.execute("SELECT count(*) FROM auth_events").fetchone()
    assert left == (300,)


def test_a_run_while_another_holds_the_lock_does_nothing(checker: Checker) -> None:
    from auth_migration.rollout.auto import _LOCK_KEY

    checker.events("better_auth", 150, failing=30)
    with psycopg.connect(checker.db) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        assert checker.run()["action"] == "skipped"
    assert checker.stored()["CANARY_ENABLED"] == "true"
    assert checker.run()["action"] == "rollback"


def test_the_reply_is_json(checker: Checker) -> None:
    json.dumps(checker.run())


def test_better_auth_failing_for_the_canary_is_rolled_back_by_the_next_run(
    dual_write_stack: DualWriteStack, local_aws: LocalAws
) -> None:
    """End to end: real signups in the canary, Better-Auth answering 500 behind the fault proxy (so each
    signup falls back to Supabase), then the AutoRollback function."""
    stack = dual_write_stack
    checker = Checker(local_aws, stack.database_url)
    checker.flags(**{**PHASE_2_CANARY, "CANARY_PERCENTAGE": "100"})
    flags = Flags(migration_mode=MigrationMode.DUAL_WRITE, canary_enabled=True, canary_percentage=100.0)
    service = stack.service()
    stack.proxy.faults.fail_rate = 1.0
    for i in range(110):
        outcome = service.signup(flags, f"canary{i}@example.com", "correct horse battery staple")
        assert outcome.result.system == "supabase"  # the user got in, through the fallback

    assert checker.run()["action"] == "rollback"
    assert checker.stored()["CANARY_ENABLED"] == "false"
    assert [(row[0], row[3]) for row in checker.audit()] == [("CANARY_ENABLED", "auto-rollback")]
    assert checker.run()["action"] == "idle"
    assert len(checker.audit()) == 1
