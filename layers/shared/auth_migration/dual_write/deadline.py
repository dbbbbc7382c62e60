"""Calls with a TOTAL time limit, and work that overlaps them.

httpx's timeouts bound each phase (connect, each read, each write), not the whole request: a server
that trickles its reply one byte per second never trips a 1 s read timeout. The fallback promise
("the other system answers within MIGRATION_FALLBACK_TIMEOUT + a small margin") needs a bound on the
whole call, so each call runs in a worker thread and the caller stops waiting at the deadline. The
abandoned thread still ends on its own, bounded by the per-phase timeout it was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Final, TypeVar

from auth_migration.backends.base import SystemName
from auth_migration.backends.errors import Timeout

__all__ = ["Deadline", "Runner"]

T = TypeVar("T")

# Enough for dual-write's overlap (primary call + hash) plus a few abandoned calls still draining.
_WORKERS: Final = 8


class Deadline:
    """A point in time a request must answer by."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.expires = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self.expires - self._clock())


class Runner:
    """One thread pool per container (Lambda serves one request at a time per container)."""

    def __init__(self, workers: int = _WORKERS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="auth-call")

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        return self._pool.submit(fn)

    def call(self, system: SystemName, fn: Callable[[float], T], seconds: float) -> T:
        """`fn(seconds)` (which passes `seconds` on as its httpx timeout), abandoned after `seconds` in total.

        Raises:
            Timeout: no answer within `seconds`; whatever `fn` raises otherwise.
        """
        if seconds <= 0:
            raise Timeout(system, detail="no time left before the deadline")
        future = self._pool.submit(fn, seconds)
        try:
            return future.result(timeout=seconds)
        except FutureTimeout:
            future.cancel()
            raise Timeout(system, detail=f"no answer within {seconds:.3f} s") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
