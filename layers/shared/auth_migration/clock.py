"""The one place the layer reads the wall clock: code that judges or stamps time takes a Clock.

Tests pin it (`fixed_clock`) instead of freezing or patching `datetime`, so nothing they assert can
expire: a rule such as "banned" is judged against the instant a migration was started with, and that
instant is an argument, not a read of today's date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "fixed_clock", "system_clock"]

#: Returns the current instant, timezone-aware (UTC).
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def fixed_clock(at: datetime) -> Clock:
    """A clock that always says `at` (timezone-aware)."""
    if at.tzinfo is None:
        raise ValueError("fixed_clock needs a timezone-aware datetime")
    return lambda: at
