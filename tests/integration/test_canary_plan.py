"""The progressive canary against the real state database and moto SSM, AutoRollback on a fixed clock
moved forward by the test: a healthy plan walks 1 -> ... -> 100 % and is then ready for phase 3 (and
switches no phase); a breach at 25 % rolls back to 0 and stays there; holds never advance; flags
changed by hand stop the plan. Events are stamped relative to that clock, never to the database's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import ANY

import psycopg
import pytest

from auth_migration.clock import fixed_clock
from auth_migration.exceptions import StateConflict
from auth_migration.rollout.auto import Decision, run_auto_rollback
from auth_migration.rollout.figures import canary_figures
from auth_migration.rollout.plan import CanaryPlan, create_plan, open_plan, pause_plan, plan_status, resume_plan
from auth_migration.rollout.store import SsmFlagStore
from auth_migration_ops.local.aws import LocalAws, put_parameters
from tests.reference_time import REFERENCE_TIME, live_reference_time

STEPS = (1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0)
BAKE = timedelta(minutes=30)
PHASE_2_AT_1 = {
    "MIGRATION_MODE": "dual_write",
    "USE_BETTER_AUTH": "false",
    "CANARY_ENABLED": "true",
    "CANARY_USER_SELECTION": "user_id_hash",
    "CANARY_PERCENTAGE": "1",
    "ROLLBACK_MIN_SAMPLE": "100",
}


#: A plan reply whatever its id, reason and step (tests override what they check).
ANY_PLAN = dict.fromkeys(("id", "action", "reason", "step_index", "percentage"), ANY)


class Guard:
    """AutoRollback's work on one flag prefix and the state database, on a clock the test moves."""

    def __init__(self, aws: LocalAws, db: str) -> None:
        self.prefix = f"/auth-migration-{uuid.uuid4().hex[:8]}/dev/"
        self.ssm = aws.client("ssm")
        self.store = SsmFlagStore(self.prefix, self.ssm)
        self.conn = psycopg.connect(db, autocommit=True)
        self.now = REFERENCE_TIME

    def flags(self, **values: str) -> None:
        put_parameters(self.ssm, self.prefix, values)

    def stored(self) -> dict[str, str]:
        return self.store.read()

    def plan(self, steps: tuple[float, ...] = STEPS) -> CanaryPlan:
        return create_plan(self.conn, steps, int(BAKE.total_seconds()), actor="ada (test)", reason="walk", now=self.now)

    def events(self, n: int, *, failing: int = 0, kind: str = "unavailable", canary: bool = True) -> None:
        """n requests Better-Auth answered first in the minute before the clock; `failing` failed."""
        self.conn.execute(
            """INSERT INTO auth_events (occurred_at, operation, system, mode, canary, success, error_kind, latency_ms,
                                        primary_system)
               SELECT %s - (i %% 60) * interval '1 second', 'login', 'better_auth', 'dual_write', %s, i > %s,
                      CASE WHEN i <= %s THEN %s END, 20 + i %% 50, 'better_auth'
               FROM generate_series(1, %s) AS i""",
            (self.now, canary, failing, failing, kind, n),
        )

    def run(self) -> Decision:
        return run_auto_rollback(self.conn, self.store, clock=fixed_clock(self.now))

    def audit(self) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            "SELECT flag, old_value, new_value, source, reason, details FROM flag_changes ORDER BY id"
        ).fetchall()

    def current(self) -> dict[str, Any]:
        shown = plan_status(self.conn, now=self.now)
        assert shown is not None
        return shown


@pytest.fixture
def guard(local_aws: LocalAws, migration_db: str) -> Iterator[Guard]:
    made = Guard(local_aws, migration_db)
    made.flags(**PHASE_2_AT_1)
    yield made
    made.conn.close()


def walk_to(guard: Guard, percentage: float) -> None:
    """Healthy traffic at every bake's end until the canary is at `percentage`."""
    while float(guard.stored()["CANARY_PERCENTAGE"]) < percentage:
        guard.now += BAKE
        guard.events(150)
        assert guard.run().action == "advance"


def test_a_healthy_plan_walks_to_100_and_is_then_ready_for_phase_3(guard: Guard) -> None:
    made = guard.plan()
    seen = [guard.stored()["CANARY_PERCENTAGE"]]
    for _ in STEPS:
        guard.now += BAKE / 2
        guard.events(150)
        half = guard.run()  # healthy, but not baked: holds
        assert (half.action, half.plan and half.plan["action"]) == ("healthy", "hold")
        guard.now += BAKE / 2
        guard.events(150)
        done = guard.run()
        if done.action == "advance":
            seen.append(guard.stored()["CANARY_PERCENTAGE"])
            assert done.plan is not None and done.plan["percentage"] == float(seen[-1])
        else:
            break
    assert seen == ["1", "5", "10", "25", "50", "75", "100"]
    assert done.plan is not None and done.plan["action"] == "ready"
    assert "ready for phase 3" in done.reason

    status = guard.current()
    assert (status["id"], status["status"], status["ready_for_phase_3"]) == (made.id, "ready", True)
    stored = guard.stored()
    assert (stored["MIGRATION_MODE"], stored["USE_BETTER_AUTH"]) == ("dual_write", "false")  # no phase switch
    rows = guard.audit()
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("CANARY_PERCENTAGE", p, "auto-rollback") for p in ["5", "10", "25", "50", "75", "100"]
    ]
    assert f"canary plan {made.id} step 2/7" in rows[0][4]
    assert rows[0][5]["plan"]["action"] == "advance"
    assert rows[0][5]["better_auth"]["requests"] == 150

    guard.now += BAKE * 4
    guard.events(150)
    later = guard.run()  # ready: nothing more to do, however long it stays healthy
    assert (later.action, later.plan) == ("healthy", None)
    assert len(guard.audit()) == 6


def test_a_breach_at_25_rolls_back_to_0_stops_the_plan_and_stays_there(guard: Guard) -> None:
    made = guard.plan()
    walk_to(guard, 25)
    guard.now += timedelta(minutes=3)  # mid-bake: a breach needs no bake
    guard.events(150, failing=30)

    tripped = guard.run()

    assert tripped.action == "rollback"
    assert tripped.plan is not None and tripped.plan["action"] == "stop"
    stored = guard.stored()
    assert (stored["CANARY_ENABLED"], stored["CANARY_PERCENTAGE"]) == ("false", "0")
    status = guard.current()
    assert (status["id"], status["status"], status["percentage"]) == (made.id, "stopped", 25)
    assert "breach at canary plan" in status["status_reason"]
    assert status["status_actor"] == "auto-rollback"
    trip_rows = guard.audit()[3:]
    assert [(r[0], r[1], r[2]) for r in trip_rows] == [
        ("CANARY_ENABLED", "true", "false"),
        ("CANARY_PERCENTAGE", "25", "0"),
    ]
    assert all(r[5]["plan"]["action"] == "stop" and r[5]["better_auth"]["system_failures"] == 30 for r in trip_rows)

    audited = len(guard.audit())
    for _ in range(3):  # healthy for hours after: nothing is re-enabled, nothing re-advances
        guard.now += BAKE
        guard.events(150)
        assert guard.run().action == "idle"
    assert len(guard.audit()) == audited
    assert (guard.stored()["CANARY_ENABLED"], guard.stored()["CANARY_PERCENTAGE"]) == ("false", "0")
    assert open_plan(guard.conn) is None


@pytest.mark.parametrize(
    ("n", "failing", "kind"), [(0, 0, ""), (60, 0, ""), (800, 780, "invalid_credentials")],
    ids=["no-data", "small-sample", "wrong-password-storm"],
)  # fmt: skip
def test_a_baked_step_without_enough_judged_traffic_never_advances(
    guard: Guard, n: int, failing: int, kind: str
) -> None:
    guard.plan()
    for _ in range(4):
        guard.now += BAKE
        if n:
            guard.events(n, failing=failing, kind=kind)
        decision = guard.run()
        assert decision.action == "hold"
        assert decision.plan is not None and decision.plan["action"] == "hold"
    assert guard.stored()["CANARY_PERCENTAGE"] == "1"
    assert guard.audit() == []


def test_a_paused_plan_holds_a_resumed_one_bakes_its_step_again(guard: Guard) -> None:
    guard.plan()
    pause_plan(guard.conn, reason="marketing launch", actor="ada", now=guard.now)
    guard.now += BAKE * 2
    guard.events(150)
    assert guard.run().plan == {
        "id": guard.current()["id"],
        "action": "hold",
        "reason": f"canary plan {guard.current()['id']} step 1/7 (1 %) is paused: marketing launch",
        "step_index": 0,
        "percentage": 1.0,
    }
    with pytest.raises(StateConflict):
        pause_plan(guard.conn, reason="again", actor="ada", now=guard.now)

    resume_plan(guard.conn, reason="launch over", actor="ada", now=guard.now)
    assert guard.current()["seconds_to_next_step"] == BAKE.total_seconds()
    guard.now += BAKE - timedelta(minutes=1)
    guard.events(150)
    assert guard.run().plan == {**ANY_PLAN, "action": "hold"}
    guard.now += timedelta(minutes=1)
    guard.events(150)
    assert guard.run().action == "advance"
    assert guard.stored()["CANARY_PERCENTAGE"] == "5"


def test_a_paused_plan_is_still_rolled_back_on_a_breach(guard: Guard) -> None:
    guard.plan()
    pause_plan(guard.conn, reason="look", actor="ada", now=guard.now)
    guard.now += timedelta(minutes=1)
    guard.events(150, failing=40)
    assert guard.run().action == "rollback"
    assert (guard.stored()["CANARY_ENABLED"], guard.stored()["CANARY_PERCENTAGE"]) == ("false", "0")
    assert guard.current()["status"] == "stopped"


def test_a_percentage_changed_by_hand_stops_the_plan_without_writing(guard: Guard) -> None:
    guard.plan()
    guard.flags(CANARY_PERCENTAGE="40")
    guard.now += BAKE
    guard.events(150)
    decision = guard.run()
    assert decision.plan is not None and decision.plan["action"] == "stop"
    assert "CANARY_PERCENTAGE is 40, not the plan's 1" in guard.current()["status_reason"]
    assert guard.stored()["CANARY_PERCENTAGE"] == "40"
    assert guard.audit() == []


def test_one_open_plan_at_a_time_and_the_schema_refuses_bad_steps(guard: Guard) -> None:
    guard.plan()
    with pytest.raises(StateConflict, match="running already"):
        guard.plan((50.0, 100.0))
    with pytest.raises(psycopg.errors.CheckViolation):
        guard.conn.execute(
            """INSERT INTO canary_plans (steps, bake_seconds, step_started_at, actor, reason, created_at, updated_at)
               VALUES ('{10,5,100}', 60, now(), 'x', 'x', now(), now())"""
        )


def test_the_figures_split_canary_from_the_rest_and_list_system_failures_only(guard: Guard) -> None:
    guard.events(90, failing=9, kind="timeout")
    guard.events(10, failing=10, kind="invalid_credentials")  # the users' own: not an error of the system
    guard.events(300, canary=False)
    old = guard.now - timedelta(hours=1)  # outside the window
    guard.conn.execute(
        """INSERT INTO auth_events (occurred_at, operation, system, mode, canary, success, error_kind, latency_ms,
                                    primary_system) VALUES (%s, 'login', 'better_auth', 'dual_write', true, false,
                                    'timeout', 9999, 'better_auth')""",
        (old,),
    )

    figures = canary_figures(guard.conn, now=guard.now, window=timedelta(minutes=5))

    shown = figures.as_json()
    assert (shown["total_requests"], shown["canary_requests"], shown["canary_share"]) == (400, 100, 0.25)
    assert shown["canary"] | {"avg_latency_ms": None, "p95_latency_ms": None} == {
        "requests": 100,
        "user_errors": 10,
        "system_failures": 9,
        "judged": 90,
        "success_rate": 0.9,
        "error_rate": 0.1,
        "avg_latency_ms": None,
        "p95_latency_ms": None,
    }
    assert 20 <= shown["canary"]["avg_latency_ms"] <= shown["canary"]["p95_latency_ms"] <= 69
    assert shown["others"]["system_failures"] == 0
    assert len(shown["recent_errors"]) == 9
    assert {e["error_kind"] for e in shown["recent_errors"]} == {"timeout"}
    times = [datetime.fromisoformat(e["occurred_at"]) for e in shown["recent_errors"]]
    assert times == sorted(times, reverse=True)
    assert all(set(e) == {"occurred_at", "operation", "system", "primary_system", "canary", "error_kind"}
               for e in shown["recent_errors"])  # fmt: skip


def test_the_function_reports_what_the_plan_did(local_aws: LocalAws, migration_db: str) -> None:
    """Through the AutoRollback function as template.yaml defines it (the wall clock, as in Lambda): the
    reply carries the plan's step."""
    from tests.integration.test_auto_rollback import Checker

    checker = Checker(local_aws, migration_db)
    checker.flags(**PHASE_2_AT_1)
    with psycopg.connect(migration_db, autocommit=True) as conn:
        made = create_plan(conn, STEPS, 1800, actor="ada", reason="walk", now=live_reference_time())
    checker.events("better_auth", 150)

    reply = checker.run()

    assert reply["action"] == "healthy"
    assert (reply["plan"]["id"], reply["plan"]["action"], reply["plan"]["percentage"]) == (made.id, "hold", 1.0)
    assert "baking" in reply["plan"]["reason"]
