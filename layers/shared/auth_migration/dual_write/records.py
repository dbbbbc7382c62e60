"""The API paths' rows in the shared state database: per-user claims, repair gaps, auth events, stats."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psycopg

from auth_migration.backends.base import SystemName
from auth_migration.dual_write.directory import metadata_json

__all__ = [
    "AuthEvent",
    "Gap",
    "GapReason",
    "MigrationStats",
    "claim_user",
    "is_tracked",
    "mark_status",
    "migration_stats",
    "record_event",
    "record_gap",
]

GapReason = Literal["secondary_failed", "fallback_signup", "mismatch", "uncertain", "lazy_failed"]
UserState = Literal["migrated_lazy", "dual_write"]
ClaimSource = Literal["lazy_login", "lazy_exchange", "dual_write_signup", "reconcile"]


def is_tracked(conn: psycopg.Connection, user_id: str) -> bool:
    """Whether some path (bulk, lazy, dual-write) already claimed this user."""
    return conn.execute("SELECT 1 FROM migrated_users WHERE original_id = %s", (user_id,)).fetchone() is not None


def claim_user(
    conn: psycopg.Connection, user_id: str, email: str, source: ClaimSource, *, created_target: bool
) -> bool:
    """Insert the per-user claim the bulk engine also inserts; False when another path holds it already.

    The primary key is the arbiter: a concurrent bulk batch inserting the same original_id blocks on
    our uncommitted row and then skips the user (ON CONFLICT DO NOTHING), and vice versa.
    """
    row = conn.execute(
        """INSERT INTO migrated_users (original_id, new_auth_id, email, migration_id, source, created_target)
           VALUES (%s, %s, %s, NULL, %s, %s) ON CONFLICT (original_id) DO NOTHING RETURNING original_id""",
        (user_id, user_id, email, source, created_target),
    ).fetchone()
    return row is not None


def mark_status(
    conn: psycopg.Connection,
    user_id: str,
    email: str,
    state: UserState,
    *,
    supabase: bool,
    better_auth: bool,
    validated: bool = False,
) -> None:
    """Upsert the user's one status record. A bulk-migrated user keeps its bulk state (the first path wins);
    the system flags only ever turn on."""
    conn.execute(
        """INSERT INTO user_migration_status (user_id, email, state, supabase_migrated, better_auth_migrated,
                                              data_validated, migration_completed_at)
           VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s AND %s THEN now() END)
           ON CONFLICT (user_id) DO UPDATE SET
               state = CASE WHEN user_migration_status.state IN ('pending', 'rolled_back')
                            THEN EXCLUDED.state ELSE user_migration_status.state END,
               supabase_migrated = user_migration_status.supabase_migrated OR EXCLUDED.supabase_migrated,
               better_auth_migrated = user_migration_status.better_auth_migrated OR EXCLUDED.better_auth_migrated,
               data_validated = user_migration_status.data_validated OR EXCLUDED.data_validated,
               migration_completed_at = COALESCE(user_migration_status.migration_completed_at,
                                                 EXCLUDED.migration_completed_at),
               updated_at = now()""",
        (user_id, email, state, supabase, better_auth, validated, supabase, better_auth),
    )


@dataclass(frozen=True, slots=True)
class Gap:
    """A disagreement between the two systems that Reconcile must close."""

    email: str
    source_system: SystemName
    reason: GapReason
    user_id: str | None = None
    password_hash: str | None = None
    metadata: Mapping[str, Any] | None = None
    email_verified: bool | None = None
    detail: str | None = None


def record_gap(conn: psycopg.Connection, gap: Gap) -> int:
    """Insert (or refresh the open) gap for this email; returns its id. Written before any queue message."""
    row = conn.execute(
        """INSERT INTO dual_write_gaps (user_id, email, source_system, reason, password_hash, user_metadata,
                                        email_verified, last_error)
           VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)
           ON CONFLICT (email) WHERE status = 'open' DO UPDATE SET
               user_id = COALESCE(EXCLUDED.user_id, dual_write_gaps.user_id),
               source_system = EXCLUDED.source_system,
               reason = EXCLUDED.reason,
               password_hash = COALESCE(EXCLUDED.password_hash, dual_write_gaps.password_hash),
               user_metadata = EXCLUDED.user_metadata,
               email_verified = COALESCE(EXCLUDED.email_verified, dual_write_gaps.email_verified),
               last_error = EXCLUDED.last_error,
               updated_at = now()
           RETURNING id""",
        (
            gap.user_id,
            gap.email.strip().lower(),
            gap.source_system,
            gap.reason,
            gap.password_hash,
            metadata_json(gap.metadata or {}),
            gap.email_verified,
            gap.detail,
        ),
    ).fetchone()
    assert row is not None  # INSERT ... RETURNING always answers one row
    return int(row[0])


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """One signup or login outcome, as the canary health check reads it."""

    operation: Literal["signup", "login", "session_exchange", "hash_upgrade"]
    system: str
    mode: str
    canary: bool
    success: bool
    error_kind: str | None
    latency_ms: int
    #: The system that answered first (the health of Better-Auth-primary traffic is read from it).
    primary_system: str | None = None


def record_event(conn: psycopg.Connection, event: AuthEvent) -> None:
    conn.execute(
        """INSERT INTO auth_events (operation, system, mode, canary, success, error_kind, latency_ms, primary_system)
           VALUES (%(operation)s, %(system)s, %(mode)s, %(canary)s, %(success)s, %(error_kind)s, %(latency_ms)s,
                   %(primary_system)s)""",
        asdict(event),
    )


@dataclass(frozen=True, slots=True)
class MigrationStats:
    """The seed's tracker figures, plus what dual-write repair still owes."""

    total_users: int
    supabase_migrated: int
    better_auth_migrated: int
    fully_migrated: int
    data_validated: int
    open_gaps: int
    conflicts: int

    @property
    def completion_rate(self) -> float:
        """Fully migrated users as a percentage of all users we track (0 when none)."""
        return round(100.0 * self.fully_migrated / self.total_users, 2) if self.total_users else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "completion_rate": self.completion_rate}


def migration_stats(conn: psycopg.Connection) -> MigrationStats:
    row = conn.execute(
        """SELECT count(*),
                  count(*) FILTER (WHERE supabase_migrated),
                  count(*) FILTER (WHERE better_auth_migrated),
                  count(*) FILTER (WHERE supabase_migrated AND better_auth_migrated),
                  count(*) FILTER (WHERE data_validated),
                  (SELECT count(*) FROM dual_write_gaps WHERE status = 'open'),
                  (SELECT count(*) FROM dual_write_gaps WHERE status = 'conflict')
           FROM user_migration_status WHERE state <> 'rolled_back'"""
    ).fetchone()
    assert row is not None
    return MigrationStats(*(int(v) for v in row))
