"""The progressive canary's rules, with a fake clock: a step advances only after its bake (and the health
window), with the minimum sample and healthy figures; anything else holds; a breach or flags changed by
hand stop the plan; 100 % baked is ready for phase 3. And the CLI syntax of steps and bake times."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from auth_migration.exceptions import InvalidRequest
from auth_migration.flags import CanarySelection, Flags, MigrationMode
from auth_migration.rollout.auto import decide
from auth_migration.rollout.checks import Health
from auth_migration.rollout.plan import CanaryPlan, parse_bake, parse_steps, step_plan
from tests.reference_time import REFERENCE_TIME

WINDOW = timedelta(minutes=5)
BAKE = timedelta(minutes=30)
STARTED = REFERENCE_TIME
PLAN = CanaryPlan(
    id=7,
    steps=(1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0),
    bake_s=int(BAKE.total_seconds()),
    step_index=2,
    step_started_at=STARTED,
    status="active",
    status_reason=None,
    status_actor=None,
    actor="ada@host (local)",
    reason="progressive",
    created_at=STARTED - timedelta(hours=2),
    updated_at=STARTED,
)
AT_10 = Flags(
    migration_mode=MigrationMode.DUAL_WRITE,
    canary_enabled=True,
    canary_percentage=10.0,
    canary_user_selection=CanarySelection.USER_ID_HASH,
)
HEALTHY = Health(500, 20, 3)
QUIET = Health(0, 0, 0)


def step(plan: CanaryPlan = PLAN, flags: Flags = AT_10, health: Health = HEALTHY, *, after: timedelta = BAKE):
    """The plan's step after `after` on the fake clock, judged on `health` in the window."""
    decision = decide(flags, health, QUIET, window=WINDOW)
    return step_plan(plan, flags, decision, now=plan.step_started_at + after, window=WINDOW)


# --- parsing ------------------------------------------------------------------------------------------------


def test_steps_parse_strictly_increasing_up_to_100() -> None:
    assert parse_steps("1,5,10,25,50,75,100") == (1, 5, 10, 25, 50, 75, 100)
    assert parse_steps(" 0.5, 2.5 ,100% ") == (0.5, 2.5, 100)
    assert parse_steps("100") == (100,)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "separated by commas"),
        ("1,,100", "separated by commas"),
        ("1,five,100", "not a number"),
        ("0,50,100", "outside (0, 100]"),
        ("-1,100", "outside (0, 100]"),
        ("1,150", "outside (0, 100]"),
        ("nan,100", "outside (0, 100]"),
        ("5,5,100", "strictly increasing"),
        ("10,5,100", "strictly increasing"),
        ("1,5,50", "last canary step must be 100"),
        ("1.234,100", "two decimals"),
    ],
)
def test_bad_steps_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        parse_steps(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("2h", 7200), ("90s", 90), ("1h30m", 5400), ("1d", 86400), (" 5M ", 300)]
)
def test_bake_durations(text: str, seconds: int) -> None:
    assert parse_bake(text) == seconds


@pytest.mark.parametrize("text", ["0", "0m", "0h0m0s", "", "m", "30", "30 minutes", "1.5h", "-5m", "30m1h", "8d"])
def test_bad_bake_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match="bake time"):
        parse_bake(text)


# --- the step rule on a fake clock ------------------------------------------------------------------------


def test_a_step_that_has_not_baked_yet_holds() -> None:
    held = step(after=BAKE - timedelta(seconds=1))
    assert held.kind == "hold"
    assert "baking: 1799 of 1800 s" in held.reason


def test_baked_healthy_with_the_sample_advances_exactly_one_step() -> None:
    advanced = step(after=BAKE)
    assert (advanced.kind, advanced.step_index, advanced.percentage) == ("advance", 3, 25.0)
    assert "canary plan 7 step 4/7: 10 -> 25 %" in advanced.reason
    much_later = step(after=BAKE * 10)  # hours late: still one step, never a jump
    assert (much_later.step_index, much_later.percentage) == (3, 25.0)


def test_a_bake_shorter_than_the_window_waits_for_the_whole_window() -> None:
    quick = replace(PLAN, bake_s=90)
    assert step(quick, after=timedelta(seconds=120)).kind == "hold"
    assert step(quick, after=WINDOW).kind == "advance"
    assert quick.seconds_to_next(STARTED + timedelta(seconds=120), WINDOW) == 180
    assert quick.seconds_to_next(STARTED + timedelta(seconds=120)) == 0  # without the window: the bake alone


@pytest.mark.parametrize(
    ("health", "why"),
    [(Health(99, 0, 0), "minimum"), (Health(400, 350, 0), "minimum"), (QUIET, "no data")],
    ids=["small-sample", "mostly-user-errors", "no-data"],
)
def test_too_little_data_holds_however_long_it_baked(health: Health, why: str) -> None:
    held = step(health=health, after=BAKE * 3)
    assert held.kind == "hold"
    assert why in held.reason


def test_a_shared_outage_holds() -> None:
    flags = AT_10
    decision = decide(flags, Health(500, 0, 100), Health(5_000, 0, 1_000), window=WINDOW)
    assert decision.alert
    assert step_plan(PLAN, flags, decision, now=STARTED + BAKE, window=WINDOW).kind == "hold"


def test_a_breach_stops_the_plan_baked_or_not() -> None:
    for after in (timedelta(seconds=10), BAKE * 2):
        stopped = step(health=Health(500, 0, 100), after=after)
        assert stopped.kind == "stop"
        assert "breach at canary plan 7 step 3/7 (10 %)" in stopped.reason


def test_a_paused_plan_holds_but_a_breach_still_stops_it() -> None:
    paused = replace(PLAN, status="paused", status_reason="marketing launch")
    held = step(paused, after=BAKE * 5)
    assert held.kind == "hold"
    assert "paused: marketing launch" in held.reason
    assert step(paused, health=Health(500, 0, 100)).kind == "stop"


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (replace(AT_10, canary_enabled=False), "switched off"),  # `canary off`, or `rollback --emergency`
        (replace(AT_10, canary_enabled=False, migration_mode=MigrationMode.SUPABASE_ONLY), "left phase 2"),
        (replace(AT_10, canary_percentage=40.0), "CANARY_PERCENTAGE is 40, not the plan's 10"),
        (replace(AT_10, use_better_auth=True), "left phase 2"),  # phase 3 by hand
        (replace(AT_10, canary_user_selection=CanarySelection.WHITELIST), "not user_id_hash"),
    ],
    ids=["canary-off", "emergency-rollback", "percentage-by-hand", "phase-3", "allow-list"],
)
def test_flags_changed_by_hand_stop_the_plan(flags: Flags, why: str) -> None:
    for plan in (PLAN, replace(PLAN, status="paused")):
        stopped = step(plan, flags, after=BAKE * 2)
        assert stopped.kind == "stop"
        assert why in stopped.reason


def test_the_last_step_baked_healthy_is_ready_for_phase_3_and_never_switches_phases() -> None:
    last = replace(PLAN, step_index=6)
    at_100 = replace(AT_10, canary_percentage=100.0)
    assert step(last, at_100, after=BAKE - timedelta(seconds=1)).kind == "hold"  # 100 % bakes too
    ready = step(last, at_100, after=BAKE)
    assert ready.kind == "ready"
    assert "ready for phase 3" in ready.reason
    assert ready.percentage is None  # nothing to write: a person moves to phase 3


def test_a_finished_plan_does_nothing() -> None:
    for status in ("stopped", "ready"):
        assert step(replace(PLAN, status=status), health=Health(500, 0, 100)).kind == "hold"


def test_a_plan_walks_to_ready_on_a_fake_clock() -> None:
    """Every run a minute apart on the fake clock, healthy throughout: one step per bake, then ready."""
    plan, now, percentages = replace(PLAN, step_index=0), STARTED, [1.0]
    for _ in range(8 * 31):
        now += timedelta(minutes=1)
        flags = replace(AT_10, canary_percentage=plan.percentage)
        result = step_plan(plan, flags, decide(flags, HEALTHY, QUIET, window=WINDOW), now=now, window=WINDOW)
        if result.kind == "advance":
            assert result.step_index == plan.step_index + 1
            plan = replace(plan, step_index=result.step_index, step_started_at=now)
            percentages.append(plan.percentage)
        elif result.kind == "ready":
            plan = replace(plan, status="ready")
            break
        else:
            assert result.kind == "hold"
    assert percentages == [1, 5, 10, 25, 50, 75, 100]
    assert plan.status == "ready"
    assert now - STARTED == BAKE * 7
