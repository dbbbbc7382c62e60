"""Fixed-window request limits shared by every container, counted in the state database.

API Gateway's stage throttle caps the whole API; these cap one client IP and one user, which a stage
throttle cannot. One upsert per request counts it against each of its buckets; a window is a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import psycopg

__all__ = ["RETENTION", "WINDOW_S", "Limit", "Overrun", "count_hits", "purge_old_windows"]

WINDOW_S: Final = 60
#: Windows older than this are deleted (AutoRollback's purge): nothing reads them after their minute.
RETENTION: Final = timedelta(hours=1)
_PURGE_BATCH: Final = 10_000


@dataclass(frozen=True, slots=True)
class Limit:
    bucket: str
    per_window: int


@dataclass(frozen=True, slots=True)
class Overrun:
    """A bucket over its limit, and how long until its window ends."""

    bucket: str
    retry_after_s: int


def _window_start(now: datetime) -> datetime:
    seconds = int(now.timestamp()) // WINDOW_S * WINDOW_S
    return datetime.fromtimestamp(seconds, tz=now.tzinfo)


def count_hits(conn: psycopg.Connection, limits: Sequence[Limit], *, now: datetime) -> Overrun | None:
    """Count one request against each bucket (one statement); the first bucket now over its limit, or None.

    A refused request is counted too: a client that keeps hammering stays refused until it stops.
    """
    if not limits:
        return None
    start = _window_start(now)
    rows = conn.execute(
        """INSERT INTO api_rate_hits AS h (bucket, window_start, hits)
           SELECT b, %s, 1 FROM unnest(%s::text[]) AS b
           ON CONFLICT (bucket, window_start) DO UPDATE SET hits = h.hits + 1
           RETURNING bucket, hits""",
        (start, [limit.bucket for limit in limits]),
    ).fetchall()
    hits: dict[str, int] = dict(rows)
    retry = max(1, int((start + timedelta(seconds=WINDOW_S) - now).total_seconds() + 0.999))
    for limit in limits:
        if hits.get(limit.bucket, 0) > limit.per_window:
            return Overrun(limit.bucket, retry)
    return None


def purge_old_windows(conn: psycopg.Connection, *, now: datetime) -> int:
    """Delete a bounded chunk of windows older than RETENTION; 0 where the table does not exist yet."""
    if conn.execute("SELECT to_regclass('api_rate_hits') IS NULL").fetchone() == (True,):
        return 0
    cur = conn.execute(
        """DELETE FROM api_rate_hits WHERE ctid IN (
               SELECT ctid FROM api_rate_hits WHERE window_start < %s LIMIT %s)""",
        (now - RETENTION, _PURGE_BATCH),
    )
    return cur.rowcount
