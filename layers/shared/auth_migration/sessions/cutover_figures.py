"""The cutover's figures, for GET /admin/cutover and the dashboard: what each auth operation did over the
health window (signups, logins, session exchanges, hash upgrades), where the session copy stands, and how
many Better-Auth passwords are still Supabase bcrypt hashes.

Three reads, each cheap at a million users: auth_events by its occurred_at index; the copy's two tables
(one aggregate each); and Better-Auth's credential accounts, a scan of `account` (about 0.2 s per million
rows here), so AdminService caches that one for HASH_COUNTS_MAX_AGE instead of paying it on every
dashboard refresh. Nothing here names a user: auth_events holds no id or email.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from auth_migration.rollout.checks import SYSTEM_FAILURE_SQL, USER_ERROR_SQL, user_error_params

__all__ = [
    "HASH_COUNTS_MAX_AGE",
    "OPERATIONS",
    "OperationFigures",
    "SessionCopyFigures",
    "operation_figures",
    "session_copy_figures",
]

#: Every operation auth_events records, in the order the dashboard lists them (one row each, zeros included).
OPERATIONS: Final = ("signup", "login", "session_exchange", "hash_upgrade")
#: How long a count of bcrypt hashes is shown before it is read again.
HASH_COUNTS_MAX_AGE: Final = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class OperationFigures:
    """One operation's requests in the window: successes, the users' own errors (a bad token, a wrong
    password) and system failures, as the health checks count them."""

    operation: str
    requests: int
    successes: int
    user_errors: int
    system_failures: int
    p95_latency_ms: float | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def operation_figures(conn: psycopg.Connection, *, now: datetime, window: timedelta) -> list[OperationFigures]:
    """The auth events of (now - window, now], one entry per operation of OPERATIONS."""
    rows = {
        str(row[0]): row
        for row in conn.execute(
            f"""SELECT operation, count(*), count(*) FILTER (WHERE success),
                       count(*) FILTER (WHERE {USER_ERROR_SQL}), count(*) FILTER (WHERE {SYSTEM_FAILURE_SQL}),
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
                FROM auth_events WHERE occurred_at > %(since)s AND occurred_at <= %(now)s GROUP BY operation""",
            {**user_error_params(), "since": now - window, "now": now},
        )
    }
    figures = []
    for operation in OPERATIONS:
        row = rows.get(operation)
        if row is None:
            figures.append(OperationFigures(operation, 0, 0, 0, 0, None))
            continue
        p95 = round(float(row[5]), 1) if row[5] is not None else None
        figures.append(OperationFigures(operation, int(row[1]), int(row[2]), int(row[3]), int(row[4]), p95))
    return figures


@dataclass(frozen=True, slots=True)
class SessionCopyFigures:
    """Where `auth-migrate sessions copy` and the exchanges that spent its tokens stand."""

    #: Supabase sessions copied and still live (the exchange accepts their tokens once Supabase is gone).
    sessions_live: int
    #: Ended because a later full copy no longer found them (signed out, expired, user deleted).
    sessions_gone_from_supabase: int
    #: Ended because one of their refresh tokens was used again (a possible theft).
    sessions_ended_by_reuse: int
    refresh_tokens_copied: int
    #: Refresh tokens spent on an exchange (each buys one Better-Auth session, once).
    refresh_tokens_exchanged: int
    last_copy_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["last_copy_at"] = self.last_copy_at.isoformat() if self.last_copy_at else None
        return body


def session_copy_figures(conn: psycopg.Connection) -> SessionCopyFigures:
    sessions = conn.execute(
        """SELECT count(*) FILTER (WHERE ended_at IS NULL),
                  count(*) FILTER (WHERE ended_reason = 'gone_from_supabase'),
                  count(*) FILTER (WHERE ended_reason = 'refresh_token_reused'),
                  max(copied_at)
           FROM copied_supabase_sessions"""
    ).fetchone()
    tokens = conn.execute(
        """SELECT count(*) FILTER (WHERE copied_at IS NOT NULL), count(*) FILTER (WHERE exchanged_at IS NOT NULL)
           FROM copied_refresh_tokens"""
    ).fetchone()
    assert sessions is not None and tokens is not None  # aggregates without GROUP BY answer one row
    return SessionCopyFigures(
        sessions_live=int(sessions[0]),
        sessions_gone_from_supabase=int(sessions[1]),
        sessions_ended_by_reuse=int(sessions[2]),
        refresh_tokens_copied=int(tokens[0]),
        refresh_tokens_exchanged=int(tokens[1]),
        last_copy_at=sessions[3],
    )
