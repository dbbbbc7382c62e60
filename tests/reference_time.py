"""The instant every date-sensitive test pins: generated data is made relative to it and the code under
test is given a clock fixed at it, so no assertion can expire on a later day.

`TEST_REFERENCE_SHIFT_DAYS` moves it (`TEST_REFERENCE_SHIFT_DAYS=365 scripts/test`): the suite must pass
shifted a year either way. `REFERENCE_SHIFTS` is the same guard inside every run, for the tests that
are parametrised over it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from auth_migration.clock import Clock, fixed_clock

__all__ = ["REFERENCE_CLOCK", "REFERENCE_SHIFTS", "REFERENCE_TIME", "live_reference_time"]

_BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
REFERENCE_TIME = _BASE + timedelta(days=int(os.environ.get("TEST_REFERENCE_SHIFT_DAYS", "0")))
REFERENCE_CLOCK: Clock = fixed_clock(REFERENCE_TIME)
#: A year back, none, a year forward: a test that compares fixed data with the real clock fails at once.
REFERENCE_SHIFTS = (timedelta(days=-365), timedelta(0), timedelta(days=365))


def live_reference_time() -> datetime:
    """For tests whose code under test runs as a deployed function does, on the wall clock (the SQS
    pipeline, `auth-migrate ... --local`): their data is made relative to that same clock, so the pair
    agrees on any date (bans lie 30-90 days either side, far beyond a test's length)."""
    return datetime.now(UTC)
