"""The canary's selection methods, judged the way a rollout depends on them: the same users in every
container, process and day; raising the percentage only adds users; the selected share is the asked
share over 100,000 ids; each method selects whom it names and nobody else."""

from __future__ import annotations

import itertools

import pytest

from auth_migration.dual_write.routing import canary_bucket, in_canary, route_for
from auth_migration.flags import CanarySelection, Flags, MigrationMode

IDS = [f"user{i}@example.com" for i in range(100_000)]
#: Buckets pinned in the source: sha256 of the lowercased address, so a new process, a new deploy or a
#: later day puts every user in the same bucket (Python's hash() is salted per process and would not).
GOLDEN = {
    "ada@example.com": 9040,
    "grace.hopper@navy.mil": 831,
    "linus@kernel.org": 2718,
    "user0@example.com": 2528,
    "Ünïcode@exämple.com": 8723,
}


def flags(selection: CanarySelection, **extra: object) -> Flags:
    return Flags(
        migration_mode=MigrationMode.DUAL_WRITE,
        canary_enabled=True,
        canary_user_selection=selection,
        **extra,  # type: ignore[arg-type]
    )


def test_buckets_are_the_pinned_ones_whatever_the_process_or_day() -> None:
    assert {email: canary_bucket(email) for email in GOLDEN} == GOLDEN
    assert canary_bucket("  ADA@Example.COM ") == GOLDEN["ada@example.com"]


@pytest.mark.parametrize("percentage", [1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 12.5])
@pytest.mark.parametrize("selection", [CanarySelection.USER_ID_HASH, CanarySelection.RANDOM])
def test_the_selected_share_over_100000_ids_is_the_asked_share(percentage: float, selection: CanarySelection) -> None:
    chosen = flags(selection, canary_percentage=percentage)
    share = sum(in_canary(chosen, email) for email in IDS) / len(IDS)
    # 0.5 percentage points: more than 6 standard deviations of a fair draw at 50 %, so a skewed hash fails.
    assert abs(share - percentage / 100) < 0.005


def test_every_user_selected_at_a_step_stays_selected_at_every_later_step() -> None:
    steps = [0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0]
    selected = [
        {e for e in IDS if in_canary(flags(CanarySelection.USER_ID_HASH, canary_percentage=p), e)} for p in steps
    ]
    for smaller, larger in itertools.pairwise(selected):
        assert smaller <= larger
    assert (len(selected[0]), len(selected[-1])) == (0, len(IDS))


def test_whitelist_selects_exactly_its_emails_ignoring_case() -> None:
    chosen = flags(CanarySelection.WHITELIST, canary_whitelist=frozenset({"vip@example.com"}), canary_percentage=100.0)
    assert in_canary(chosen, "VIP@Example.com")
    assert not any(in_canary(chosen, email) for email in IDS[:1000])  # the percentage plays no part


def test_email_domain_selects_the_whole_domain_and_no_lookalike() -> None:
    chosen = flags(CanarySelection.EMAIL_DOMAIN, canary_email_domains=frozenset({"beta.example.com"}))
    assert in_canary(chosen, "anyone@BETA.example.com")
    assert not in_canary(chosen, "anyone@notbeta.example.com")
    assert not in_canary(chosen, "beta.example.com@example.com")
    assert not in_canary(chosen, "anyone@sub.beta.example.com")


def test_a_disabled_canary_selects_nobody_and_phase_three_needs_no_canary() -> None:
    off = Flags(migration_mode=MigrationMode.DUAL_WRITE, canary_enabled=False, canary_percentage=100.0)
    assert not any(in_canary(off, email) for email in IDS[:1000])
    everyone = Flags(migration_mode=MigrationMode.DUAL_WRITE, use_better_auth=True)
    route = route_for(everyone, IDS[0])
    assert (route.primary, route.canary) == ("better_auth", False)  # primary for all, not as a canary
