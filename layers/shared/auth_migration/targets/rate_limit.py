"""Request pacing for the supabase target: one cap (requests/s) for a whole migration, however many
MigrateBatch containers run it.

A limiter in process memory caps one container; with the SQS trigger's MaximumConcurrency at N, GoTrue
would see N times the cap. So the slots live in the state database: each container reserves a short
block of evenly spaced slots (one row per migration, advanced with one UPDATE), and its threads spend
them in order. Blocks never overlap in time, so the whole migration stays within the cap wherever its
calls come from. A slot a container failed to use in time is dropped, never spent late on top of the
next container's block.

Written by hand rather than with a rate-limit library: the ones on PyPI (limits, pyrate-limiter) keep
their buckets in process memory or Redis; our only shared store is this Postgres.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

import psycopg

__all__ = [
    "Limiter",
    "PostgresSlots",
    "RateLimiter",
    "SharedRateLimiter",
    "block_size",
]

#: How long a block of slots lasts (seconds): short enough that a container that stops wastes little of
#: the cap, long enough that the reservations stay a few dozen statements per second at the highest cap.
BLOCK_SPAN_S: Final = 0.1
MAX_BLOCK: Final = 64

_RESERVE_SQL: Final = """
INSERT INTO target_rate_slots AS s (key, next_at) VALUES (%(key)s, clock_timestamp() + make_interval(secs => %(span)s))
ON CONFLICT (key) DO UPDATE
    SET next_at = greatest(s.next_at, clock_timestamp()) + make_interval(secs => %(span)s)
RETURNING extract(epoch FROM (s.next_at - make_interval(secs => %(span)s) - clock_timestamp()))::float8
"""


class Limiter(Protocol):
    """Blocks until the caller may send one request."""

    rate: float

    def acquire(self) -> None: ...


def block_size(rate: float) -> int:
    """Slots reserved at a time: about BLOCK_SPAN_S worth of the rate, at least one."""
    return max(1, min(MAX_BLOCK, math.floor(rate * BLOCK_SPAN_S)))


class RateLimiter:
    """Evenly spaced request slots, shared by every thread of one process: at most `rate` requests in
    any second (plus one), with no burst that could trip GoTrue's own limiter. For one process only
    (a dry run's check call, tests, benches); a migration's batches use SharedRateLimiter."""

    def __init__(
        self,
        rate: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()
        self._sleep, self._monotonic = sleep, monotonic

    def acquire(self) -> None:
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class SharedRateLimiter:
    """Slots from blocks reserved in a store shared by every container (see the module docstring).

    `reserve(n, span_s)` books n slots spanning span_s seconds and answers in how many seconds the
    block starts (0 when at once); the store decides, so container clocks never need to agree."""

    def __init__(
        self,
        rate: float,
        reserve: Callable[[int, float], float],
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._interval = 1.0 / rate
        self._block = block_size(rate)
        self._reserve = reserve
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()
        self._sleep, self._monotonic = sleep, monotonic
        #: Blocks reserved and slots dropped unused since this limiter was made (for benches and tests).
        self.blocks = 0
        self.dropped = 0

    def acquire(self) -> None:
        with self._lock:
            now = self._monotonic()
            # A slot in the past may now border another container's block: spent late it could put
            # two requests where the cap allows one. Within a quarter interval, any one-second window
            # still holds at most rate + 1 requests, with room left for the network's jitter. (Only an
            # idle container leaves slots unused: busy threads take theirs ahead and sleep.)
            while self._slots and self._slots[0] < now - self._interval / 4:
                self._slots.popleft()
                self.dropped += 1
            if not self._slots:
                span = self._block * self._interval
                before = self._monotonic()
                delay = self._reserve(self._block, span)
                after = self._monotonic()
                # The store measured the delay at about the middle of the round trip.
                start = (before + after) / 2 + max(0.0, delay)
                self._slots.extend(start + k * self._interval for k in range(self._block))
                self.blocks += 1
                now = after
            slot = self._slots.popleft()
        if slot > now:
            self._sleep(slot - now)


class PostgresSlots:
    """The shared store of SharedRateLimiter: a row per key in target_rate_slots (sql 0008), on a
    connection of its own (autocommit), since the batch's connection is inside its transaction while
    the calls run. Reconnects once after a dropped connection."""

    def __init__(self, connect: Callable[[], psycopg.Connection], key: str) -> None:
        self._connect = connect
        self.key = key
        self._conn: psycopg.Connection | None = None

    def __call__(self, n: int, span_s: float) -> float:
        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                row = self._conn.execute(_RESERVE_SQL, {"key": self.key, "span": span_s}).fetchone()
            except psycopg.OperationalError:
                self.close()
                if attempt == 2:
                    raise
                continue
            return float(row[0]) if row else 0.0
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
