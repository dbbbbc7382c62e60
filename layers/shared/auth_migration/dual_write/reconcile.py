"""Reconcile: close one dual-write gap until both systems hold the same user, idempotently.

A gap names an email (and the id when known) and the system whose record wins. Repair reads what each
system holds in its own table, then:
- neither holds the user: nothing was created; the gap closes.
- one holds it: it is created in the other with the same id and the same password (the bcrypt hash the
  signup computed, else the holder's own bcrypt hash); Better-Auth by SQL, GoTrue by its admin API.
- both hold it under different ids: two people or a late write; a person must decide (status conflict).
- both hold it under one id: differing fields are brought to the winning side's values.
Then the user's claim and status are recorded (data_validated) and the gap's hash is erased.
Transient failures raise, so SQS redelivers the message and, after its receive limit, dead-letters it;
the gap row stays open and the sweep re-sends it later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import psycopg
from psycopg.rows import dict_row

from auth_migration.backends.base import BETTER_AUTH, SUPABASE, BackendUser, SystemName
from auth_migration.backends.errors import BadRequest, UserExists
from auth_migration.backends.supabase import SupabaseAuthBackend
from auth_migration.clock import Clock, system_clock
from auth_migration.connections import Connections
from auth_migration.dual_write.directory import (
    NewUser,
    find_better_auth_user,
    find_supabase_user,
    insert_better_auth_user,
    supabase_hash,
    update_better_auth_user,
)
from auth_migration.dual_write.passwords import is_bcrypt_hash
from auth_migration.dual_write.records import Gap, GapReason, claim_user, mark_status, record_gap
from auth_migration.dual_write.service import records_differ
from auth_migration.exceptions import InvalidRequest
from auth_migration.names import display_name

__all__ = ["GapRow", "Reconciler", "RepairResult", "open_gap_ids"]

T = TypeVar("T")
Outcome = Literal["nothing_created", "created_better_auth", "created_supabase", "fields_fixed", "consistent"]

_SUPABASE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class GapRow:
    id: int
    user_id: str | None
    email: str
    source_system: SystemName
    reason: str
    password_hash: str | None
    user_metadata: Mapping[str, Any]
    email_verified: bool | None
    status: str


@dataclass(frozen=True, slots=True)
class RepairResult:
    gap_id: int
    status: Literal["repaired", "conflict", "already_closed"]
    outcome: str


def open_gap_ids(conn: psycopg.Connection, *, older_than_s: int, max_attempts: int, limit: int) -> list[int]:
    """Open gaps untouched for `older_than_s` seconds: what the sweep re-queues (their message was lost,
    dead-lettered, or never sent)."""
    rows = conn.execute(
        """SELECT id FROM dual_write_gaps
           WHERE status = 'open' AND updated_at < now() - make_interval(secs => %s) AND attempts < %s
           ORDER BY updated_at LIMIT %s""",
        (older_than_s, max_attempts, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


class Reconciler:
    def __init__(self, *, supabase: SupabaseAuthBackend, connections: Connections, clock: Clock = system_clock) -> None:
        self.supabase = supabase
        self.conns = connections
        self.clock = clock

    def gap_id_from(self, message: Mapping[str, Any]) -> int:
        """The gap a queue message names; a message carrying a whole gap (state DB was down) is recorded first.

        Raises:
            InvalidRequest: the message is neither shape (a poison message: reported, never retried forever).
        """
        gap_id = message.get("gap_id")
        if isinstance(gap_id, int) and not isinstance(gap_id, bool) and gap_id > 0:
            return gap_id
        body = message.get("gap")
        if (
            isinstance(body, dict)
            and isinstance(body.get("email"), str)
            and body.get("source_system")
            in (
                SUPABASE,
                BETTER_AUTH,
            )
        ):
            reason: GapReason = body["reason"] if body.get("reason") in _REASONS else "uncertain"
            gap = Gap(
                email=body["email"],
                source_system=body["source_system"],
                reason=reason,
                user_id=body.get("user_id") if isinstance(body.get("user_id"), str) else None,
                email_verified=body.get("email_verified") if isinstance(body.get("email_verified"), bool) else None,
            )
            return self._state(lambda conn: record_gap(conn, gap))
        raise InvalidRequest("reconcile message needs a positive integer gap_id or a gap object")

    def repair(self, gap_id: int) -> RepairResult:
        """Close gap `gap_id`. Raises transient errors (backend unavailable, database) for a retry."""
        row = self._state(lambda conn: _load(conn, gap_id))
        if row is None or row.status != "open":
            return RepairResult(gap_id, "already_closed", row.status if row else "missing")
        try:
            status, outcome = self._repair(row)
        except Exception as exc:
            error = type(exc).__name__
            self._state(
                lambda conn: conn.execute(
                    """UPDATE dual_write_gaps SET attempts = attempts + 1, last_error = %s, updated_at = now()
                       WHERE id = %s""",
                    (error, gap_id),
                )
            )
            raise
        self._state(lambda conn: _close(conn, gap_id, status, outcome))
        return RepairResult(gap_id, status, outcome)

    # --- the repair ---------------------------------------------------------------------------------

    def _repair(self, gap: GapRow) -> tuple[Literal["repaired", "conflict"], str]:
        supabase = self._source(lambda conn: _find(find_supabase_user, conn, gap))
        better_auth = self._target(lambda conn: _find(find_better_auth_user, conn, gap))
        if supabase is None and better_auth is None:
            return "repaired", "nothing_created"
        if supabase is not None and better_auth is not None:
            if supabase.id != better_auth.id:
                return "conflict", "different_ids"
            outcome = self._fix_fields(gap, supabase, better_auth)
        elif supabase is not None:
            outcome = self._create_in_better_auth(gap, supabase)
        else:
            assert better_auth is not None
            outcome = self._create_in_supabase(gap, better_auth)
        if outcome.startswith("conflict:"):
            return "conflict", outcome.removeprefix("conflict:")
        user_id = (supabase or better_auth).id  # type: ignore[union-attr]
        created_target = outcome == "created_better_auth"

        def track(conn: psycopg.Connection) -> None:
            claim_user(conn, user_id, gap.email, "reconcile", created_target=created_target)
            mark_status(conn, user_id, gap.email, "dual_write", supabase=True, better_auth=True, validated=True)

        self._state(track)
        return "repaired", outcome

    def _create_in_better_auth(self, gap: GapRow, holder: BackendUser) -> str:
        password_hash = gap.password_hash if is_bcrypt_hash(gap.password_hash) else None
        if password_hash is None:
            password_hash = self._source(lambda conn: supabase_hash(conn, holder.id))
        new = NewUser(
            holder.id,
            holder.email,
            password_hash if is_bcrypt_hash(password_hash) else None,
            holder.email_verified,
            holder.metadata or gap.user_metadata,
            self.clock(),
        )
        try:
            self._target(lambda conn: insert_better_auth_user(conn, new))
        except psycopg.errors.UniqueViolation:
            return "conflict:email_held_by_another_id"
        return "created_better_auth"

    def _create_in_supabase(self, gap: GapRow, holder: BackendUser) -> str:
        password_hash = gap.password_hash if is_bcrypt_hash(gap.password_hash) else None
        if password_hash is None:
            password_hash = self._target(lambda conn: _better_auth_bcrypt(conn, holder.id))
        confirmed = holder.email_verified or bool(gap.email_verified)
        try:
            self.supabase.create_user(
                holder.email,
                user_id=holder.id,
                password_hash=password_hash,
                email_confirm=confirmed,
                user_metadata=gap.user_metadata,
                timeout=_SUPABASE_TIMEOUT_S,
            )
        except UserExists:
            # Created meanwhile (a slow earlier attempt): same id is success, another id is a conflict.
            existing = self._source(lambda conn: find_supabase_user(conn, email=holder.email))
            if existing is not None and existing.id == holder.id:
                return "created_supabase"
            return "conflict:email_held_by_another_id"
        except BadRequest:
            # GoTrue refuses the record itself (a non-UUID id: docs/BETTER_AUTH.md): retrying cannot help.
            return "conflict:rejected_by_supabase"
        return "created_supabase"

    def _fix_fields(self, gap: GapRow, supabase: BackendUser, better_auth: BackendUser) -> str:
        problems = records_differ(gap.source_system, supabase, better_auth)
        if not problems:
            return "consistent"
        if "email_verified" in problems and better_auth.email_verified and not supabase.email_verified:
            self.supabase.update_user(supabase.id, email_confirm=True, timeout=_SUPABASE_TIMEOUT_S)
        if gap.source_system == SUPABASE and ("email_verified" in problems or "name" in problems):
            name = display_name(supabase.email, supabase.metadata)
            verified = supabase.email_verified or better_auth.email_verified
            self._target(lambda conn: update_better_auth_user(conn, better_auth.id, email_verified=verified, name=name))
        return "fields_fixed"

    # --- plumbing -----------------------------------------------------------------------------------

    def _state(self, fn: Callable[[psycopg.Connection], T]) -> T:
        return self.conns.transact("state", fn)

    def _source(self, fn: Callable[[psycopg.Connection], T]) -> T:
        return self.conns.transact("source", fn)

    def _target(self, fn: Callable[[psycopg.Connection], T]) -> T:
        return self.conns.transact("target", fn)


_REASONS = ("secondary_failed", "fallback_signup", "mismatch", "uncertain", "lazy_failed")


def _find(finder: Callable[..., BackendUser | None], conn: psycopg.Connection, gap: GapRow) -> BackendUser | None:
    if gap.user_id is not None:
        found = finder(conn, user_id=gap.user_id)
        if found is not None:
            return found
    return finder(conn, email=gap.email)


def _better_auth_bcrypt(conn: psycopg.Connection, user_id: str) -> str | None:
    row = conn.execute(
        """SELECT password FROM account WHERE "userId" = %s AND "providerId" = 'credential'""", (user_id,)
    ).fetchone()
    return row[0] if row and is_bcrypt_hash(row[0]) else None


def _load(conn: psycopg.Connection, gap_id: int) -> GapRow | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """SELECT id, user_id, email, source_system, reason, password_hash, user_metadata, email_verified, status
               FROM dual_write_gaps WHERE id = %s FOR UPDATE""",
            (gap_id,),
        ).fetchone()
    return GapRow(**row) if row else None


def _close(conn: psycopg.Connection, gap_id: int, status: str, outcome: str) -> None:
    conn.execute(
        """UPDATE dual_write_gaps SET status = %s, outcome = %s, password_hash = NULL, attempts = attempts + 1,
               last_error = NULL, closed_at = now(), updated_at = now()
           WHERE id = %s AND status = 'open'""",
        (status, outcome, gap_id),
    )
