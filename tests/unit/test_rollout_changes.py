"""Flag changes are validated and ordered so that no state in between is less safe than both ends."""

from __future__ import annotations

from itertools import accumulate, product

import pytest

from auth_migration.dual_write.routing import route_for
from auth_migration.exceptions import InvalidRequest
from auth_migration.flags import parse_flags
from auth_migration.rollout import PHASES, emergency_rollback, phase_of, plan_changes
from auth_migration.rollout.changes import FlagChange

EMAILS = [f"user{i}@example.com" for i in range(400)]
BASE = {"MIGRATION_MODE": "supabase_only", "USE_BETTER_AUTH": "false", "MIGRATION_VALIDATION": "false"}


def exposure(state: dict[str, str]) -> tuple[float, float]:
    """(share answered first by Better-Auth, share that touches Better-Auth at all) for sample users."""
    flags, _ = parse_flags(state)
    routes = [route_for(flags, e) for e in EMAILS]
    first = sum(r.primary == "better_auth" for r in routes) / len(routes)
    touched = sum(r.primary == "better_auth" or r.secondary == "better_auth" for r in routes) / len(routes)
    return first, touched


def states_along(start: dict[str, str], changes: list[FlagChange]) -> list[dict[str, str]]:
    return list(accumulate(changes, lambda state, c: {**state, c.name: c.new}, initial=start))


def assert_never_less_safe_than_both_ends(start: dict[str, str], desired: dict[str, str]) -> None:
    states = states_along(start, plan_changes(start, desired))
    worst_end = (
        max(exposure(states[0])[0], exposure(states[-1])[0]),
        max(exposure(states[0])[1], exposure(states[-1])[1]),
    )
    for state in states[1:-1]:
        first, touched = exposure(state)
        assert first <= worst_end[0], state
        assert touched <= worst_end[1], state


@pytest.mark.parametrize(("start", "end"), list(product(PHASES, PHASES)))
def test_every_phase_step_passes_only_through_states_no_less_safe_than_its_ends(start: int, end: int) -> None:
    canary = {"CANARY_ENABLED": "true", "CANARY_PERCENTAGE": "30", "CANARY_USER_SELECTION": "user_id_hash"}
    assert_never_less_safe_than_both_ends({**BASE, **PHASES[start], **canary}, dict(PHASES[end]))


def test_an_emergency_rollback_narrows_first() -> None:
    start = {**PHASES[3], "CANARY_ENABLED": "true", "CANARY_PERCENTAGE": "50"}
    changes = plan_changes(start, emergency_rollback(start))
    assert [c.name for c in changes] == ["USE_BETTER_AUTH", "CANARY_ENABLED", "MIGRATION_MODE"]
    assert_never_less_safe_than_both_ends(start, emergency_rollback(start))


def test_widening_switches_the_primary_last() -> None:
    changes = plan_changes(dict(PHASES[1]), dict(PHASES[3]))
    assert [c.name for c in changes] == ["MIGRATION_VALIDATION", "HASH_UPGRADE", "MIGRATION_MODE", "USE_BETTER_AUTH"]


def test_emergency_rollback_from_better_auth_only_stops_at_dual_write() -> None:
    assert emergency_rollback(dict(PHASES[4]))["MIGRATION_MODE"] == "dual_write"
    assert emergency_rollback(dict(PHASES[3]))["MIGRATION_MODE"] == "supabase_only"


@pytest.mark.parametrize(
    ("name", "value"),
    [("NOPE", "1"), ("CANARY_PERCENTAGE", "250"), ("CANARY_PERCENTAGE", "ten"), ("MIGRATION_MODE", "both"),
     ("CANARY_EMAIL_DOMAINS", "not a domain"), ("USE_BETTER_AUTH", "maybe")],
)  # fmt: skip
def test_a_value_the_flag_cannot_take_is_refused(name: str, value: str) -> None:
    with pytest.raises(InvalidRequest):
        plan_changes({}, {name: value})


def test_values_are_stored_in_canonical_form_and_no_ops_are_dropped() -> None:
    changes = plan_changes({"USE_BETTER_AUTH": "false"}, {"use_better_auth": "No", "CANARY_PERCENTAGE": "5%"})
    assert changes == [FlagChange("CANARY_PERCENTAGE", None, "5")]


def test_the_phase_is_read_back_from_mode_and_primary() -> None:
    assert [phase_of(dict(p)) for p in PHASES.values()] == [1, 2, 3, 4]
    assert phase_of({"MIGRATION_MODE": "better_auth_only", "USE_BETTER_AUTH": "false"}) is None


def test_a_canary_is_closed_before_a_mode_that_would_obey_it_opens() -> None:
    # Mode first would pass through dual-write with everyone in the canary: Better-Auth first for all.
    start = {**BASE, "CANARY_ENABLED": "true", "CANARY_PERCENTAGE": "100"}
    desired = {"MIGRATION_MODE": "dual_write", "CANARY_ENABLED": "false"}
    assert [c.name for c in plan_changes(start, desired)] == ["CANARY_ENABLED", "MIGRATION_MODE"]
    assert_never_less_safe_than_both_ends(start, desired)
    wrong = states_along(start, [FlagChange("MIGRATION_MODE", "supabase_only", "dual_write")])
    assert exposure(wrong[-1])[0] == 1.0  # what the order avoids
