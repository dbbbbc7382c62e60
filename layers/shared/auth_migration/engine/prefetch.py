"""Read and decide the next batch while the current one writes: one background thread per container.

Why: a Better-Auth batch spends about half its time in Python (reading the range's rows, classifying,
transforming, looking the target up) and half waiting for the server to run its one write statement. Run
one after the other they add up; on two cores, the next batch's Python can run while the server writes
this one. The prepared work is only a proposal: the batch re-reads its row under its lock and uses it only
when the batch row it read is unchanged (engine/batch.py `_run_better_auth`); every guarantee still comes
from the locked transaction (the claim, the constraints, the savepoint fallback).

Written by hand, not with a library: it is one future per batch message on a one-thread executor, whose
only subtleties (a result nobody takes, a thread still running when the invocation ends) are ours.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["Prefetcher"]


class Prefetcher[T]:
    """At most one prepared result per key; `take` hands it over (or None), `discard` drops everything."""

    def __init__(self, on_error: Callable[[Hashable, BaseException], None]) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Hashable, Future[T | None]] = {}
        self._on_error = on_error

    def start(self, key: Hashable, prepare: Callable[[], T | None]) -> None:
        """Prepare `key` in the background (a second start of a key already pending is a no-op)."""
        if key in self._pending:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-prefetch")
        self._pending[key] = self._pool.submit(prepare)

    def take(self, key: Hashable) -> T | None:
        """The prepared result of `key`, waiting for it if needed; None when none was started or it failed
        (the failure is reported, and the batch then does the work itself, as without a prefetch)."""
        future = self._pending.pop(key, None)
        if future is None:
            return None
        try:
            return future.result()
        except Exception as exc:
            self._on_error(key, exc)
            return None

    @property
    def pending(self) -> int:
        """Read-aheads started and not taken yet."""
        return len(self._pending)

    def wait(self) -> None:
        """Until every read-ahead started has finished (results stay, to be taken)."""
        for future in list(self._pending.values()):
            future.exception()

    def discard(self) -> None:
        """Wait for whatever is still running and drop every result: at the end of an invocation nothing may
        run on (Lambda freezes the process between invocations)."""
        pending, self._pending = self._pending, {}
        for key, future in pending.items():
            try:
                future.result()
            except Exception as exc:
                self._on_error(key, exc)
