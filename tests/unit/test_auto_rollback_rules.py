"""AutoRollback's rules over the window's figures: system failures only, a minimum sample, no data is
not healthy, a shared outage holds, one step back, and nothing to do once rolled back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from auth_migration.flags import CanarySelection, Flags, MigrationMode
from auth_migration.rollout.auto import decide
from auth_migration.rollout.checks import Health

WINDOW = timedelta(minutes=5)
PHASE_2_CANARY = Flags(
    migration_mode=MigrationMode.DUAL_WRITE,
    canary_enabled=True,
    canary_percentage=10.0,
    canary_user_selection=CanarySelection.USER_ID_HASH,
)
PHASE_3 = Flags(migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=True)
QUIET = Health(0, 0, 0)


def test_a_failing_canary_is_switched_off() -> None:
    decision = decide(PHASE_2_CANARY, Health(200, 0, 30), QUIET, window=WINDOW)
    assert decision.action == "rollback"
    assert decision.flags == {"CANARY_ENABLED": "false"}
    assert decision.figures["better_auth"]["system_failures"] == 30


def test_failing_phase_three_steps_back_to_phase_two_with_the_canary_off() -> None:
    decision = decide(PHASE_3, Health(500, 0, 60), QUIET, window=WINDOW)
    assert decision.action == "rollback"
    assert decision.flags == {"CANARY_ENABLED": "false", "USE_BETTER_AUTH": "false"}


def test_a_storm_of_wrong_passwords_is_not_a_system_failure() -> None:
    storm = Health(requests=5_000, user_errors=4_000, system_failures=2)
    assert decide(PHASE_2_CANARY, storm, QUIET, window=WINDOW).action == "healthy"


@pytest.mark.parametrize("health", [Health(99, 0, 50), Health(300, 250, 40)], ids=["few", "mostly-user-errors"])
def test_below_the_minimum_sample_it_holds(health: Health) -> None:
    decision = decide(PHASE_2_CANARY, health, QUIET, window=WINDOW)
    assert decision.action == "hold"
    assert "minimum" in decision.reason


def test_no_data_is_not_healthy() -> None:
    decision = decide(PHASE_2_CANARY, QUIET, QUIET, window=WINDOW)
    assert decision.action == "hold"
    assert "no data" in decision.reason


def test_a_shared_outage_holds_and_alerts() -> None:
    decision = decide(PHASE_2_CANARY, Health(200, 0, 40), Health(2_000, 0, 300), window=WINDOW)
    assert decision.action == "hold"
    assert decision.alert
    assert decision.flags == {}


def test_healthy_supabase_traffic_does_not_excuse_a_failing_better_auth() -> None:
    assert decide(PHASE_2_CANARY, Health(200, 0, 40), Health(2_000, 0, 5), window=WINDOW).action == "rollback"


@pytest.mark.parametrize(
    "flags",
    [
        Flags(),  # phase 1
        Flags(migration_mode=MigrationMode.DUAL_WRITE),  # phase 2, canary off: already rolled back
        Flags(migration_mode=MigrationMode.BETTER_AUTH_ONLY, use_better_auth=True),  # past dual-write
    ],
)
def test_with_nothing_to_watch_it_does_nothing(flags: Flags) -> None:
    decision = decide(flags, Health(500, 0, 500), QUIET, window=WINDOW)
    assert decision.action == "idle"
    assert decision.flags == {}


def test_the_success_rate_threshold_trips_on_its_own() -> None:
    lenient = Flags(
        migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=True, rollback_max_error_rate=0.5,
        rollback_min_success_rate=0.95,
    )  # fmt: skip
    assert decide(lenient, Health(1_000, 0, 80), QUIET, window=WINDOW).action == "rollback"
