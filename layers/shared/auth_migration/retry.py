"""Retry with exponential backoff and full jitter, for transient errors only.

Written by hand rather than taken from tenacity: it is one loop, and the batch function's cold start
should not pay for another import.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


def backoff_delay(attempt: int, *, base_s: float = 0.2, cap_s: float = 5.0, rng: random.Random | None = None) -> float:
    """Full-jitter delay before retry number `attempt` (1-based): uniform in [0, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(cap_s, base_s * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, ceiling)


def retry_transient[T](
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    max_retries: int = 3,
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    base_s: float = 0.2,
) -> T:
    """Call fn; on a transient error retry up to max_retries times with backoff; re-raise anything else."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            attempt += 1
            if attempt > max_retries or not is_transient(exc):
                raise
            if on_retry:
                on_retry(attempt, exc)
            sleep(backoff_delay(attempt, base_s=base_s))
