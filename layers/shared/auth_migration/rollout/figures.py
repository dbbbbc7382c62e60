"""The canary figures, computed in one place for `canary status`, the admin API and the dashboard.

Over the auth_events of a window: canary requests against all, the canary's share, success and error
rates (system failures only: the rule of rollout/checks.py, shared as SQL), average and p95 latency,
and the latest system failures. auth_events holds no user id or email, so "users" here are requests,
and nothing here can leak who they were. Two queries, both an index range over occurred_at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from auth_migration.rollout.checks import SYSTEM_FAILURE_SQL, USER_ERROR_SQL, Health, user_error_params

__all__ = ["CanaryFigures", "GroupFigures", "RecentError", "canary_figures"]

#: How many of the latest system failures are shown.
RECENT_ERRORS: Final = 10


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """The requests of one group (the canary, or everyone else) in the window."""

    health: Health
    avg_latency_ms: float | None
    p95_latency_ms: float | None

    def as_json(self) -> dict[str, Any]:
        h = self.health
        return {
            "requests": h.requests,
            "user_errors": h.user_errors,
            "system_failures": h.system_failures,
            "judged": h.judged,
            "success_rate": round(h.success_rate, 4) if h.judged else None,
            "error_rate": round(h.error_rate, 4) if h.judged else None,
            "avg_latency_ms": self.avg_latency_ms,
            "p95_latency_ms": self.p95_latency_ms,
        }


@dataclass(frozen=True, slots=True)
class RecentError:
    occurred_at: datetime
    operation: str
    system: str
    primary_system: str | None
    canary: bool
    error_kind: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "occurred_at": self.occurred_at.isoformat(),
            "operation": self.operation,
            "system": self.system,
            "primary_system": self.primary_system,
            "canary": self.canary,
            "error_kind": self.error_kind,
        }


@dataclass(frozen=True, slots=True)
class CanaryFigures:
    since: datetime
    until: datetime
    canary: GroupFigures
    others: GroupFigures
    recent_errors: tuple[RecentError, ...]

    @property
    def total_requests(self) -> int:
        return self.canary.health.requests + self.others.health.requests

    @property
    def canary_share(self) -> float | None:
        """The canary's part of all requests (None without requests)."""
        total = self.total_requests
        return self.canary.health.requests / total if total else None

    def as_json(self) -> dict[str, Any]:
        share = self.canary_share
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "window_s": int((self.until - self.since).total_seconds()),
            "total_requests": self.total_requests,
            "canary_requests": self.canary.health.requests,
            "canary_share": round(share, 4) if share is not None else None,
            "canary": self.canary.as_json(),
            "others": self.others.as_json(),
            "recent_errors": [e.as_json() for e in self.recent_errors],
        }


def _latency(value: Any) -> float | None:
    return round(float(value), 1) if value is not None else None


def canary_figures(conn: psycopg.Connection, *, now: datetime, window: timedelta) -> CanaryFigures:
    """The figures of the auth events in (now - window, now]."""
    since = now - window
    params = {**user_error_params(), "since": since, "now": now, "limit": RECENT_ERRORS}
    groups = {
        bool(row[0]): GroupFigures(Health(int(row[1]), int(row[2]), int(row[3])), _latency(row[4]), _latency(row[5]))
        for row in conn.execute(
            f"""SELECT canary, count(*), count(*) FILTER (WHERE {USER_ERROR_SQL}),
                       count(*) FILTER (WHERE {SYSTEM_FAILURE_SQL}), avg(latency_ms),
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
                FROM auth_events WHERE occurred_at > %(since)s AND occurred_at <= %(now)s GROUP BY canary""",
            params,
        )
    }
    empty = GroupFigures(Health(0, 0, 0), None, None)
    recent = tuple(
        RecentError(row[0], row[1], row[2], row[3], bool(row[4]), row[5])
        for row in conn.execute(
            f"""SELECT occurred_at, operation, system, primary_system, canary, error_kind FROM auth_events
                WHERE occurred_at > %(since)s AND occurred_at <= %(now)s AND {SYSTEM_FAILURE_SQL}
                ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s""",
            params,
        )
    )
    return CanaryFigures(since, now, groups.get(True, empty), groups.get(False, empty), recent)
