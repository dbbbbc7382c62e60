"""What the admin API's routes do: read the rollout (flags, health, canary figures, plan), change it
the way the CLI does (one Proposal, the same order, checks and audit; source admin-api), and report
one migration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from auth_migration.admin.models import (
    FlagBody,
    MigrationReport,
    RolloutChange,
    RolloutChangeReply,
    RolloutView,
)
from auth_migration.clock import Clock, system_clock
from auth_migration.connections import Connections
from auth_migration.dual_write.directory import credential_hash_counts
from auth_migration.dual_write.records import migration_stats
from auth_migration.engine import EngineContext, migration_report
from auth_migration.exceptions import AuthMigrationError
from auth_migration.flags import describe_flags, parse_flags
from auth_migration.rollout.apply import apply_changes
from auth_migration.rollout.audit import AuditEntry, record
from auth_migration.rollout.audit import history as audit_history
from auth_migration.rollout.auto import decide
from auth_migration.rollout.checks import phase_blockers, primary_health
from auth_migration.rollout.figures import canary_figures
from auth_migration.rollout.phases import PHASE_NAMES, phase_of
from auth_migration.rollout.plan import plan_status
from auth_migration.rollout.proposal import Proposal, propose_emergency_rollback, propose_flags, propose_phase
from auth_migration.rollout.store import FlagStore
from auth_migration.sessions.cutover_figures import HASH_COUNTS_MAX_AGE, operation_figures, session_copy_figures
from auth_migration.store import require_schema

__all__ = ["AdminService", "Unsafe"]


class Unsafe(Exception):
    """A phase a safety check refuses, asked without `force` (the reply is a 409 with the blockers)."""

    def __init__(self, proposal: Proposal) -> None:
        super().__init__(f"{proposal.target} is not safe now")
        self.proposal = proposal


@dataclass
class AdminService:
    store: FlagStore
    connections: Connections
    clock: Clock = system_clock
    #: Told about audit rows that could not be written after SSM was (the handler logs them whole, so the
    #: change is still on record in CloudWatch).
    on_audit_failure: Callable[[Sequence[AuditEntry], Exception], None] = lambda _entries, _exc: None
    #: The last count of bcrypt hashes and when it was read (a scan of Better-Auth's accounts: not per refresh).
    _hash_counts: tuple[datetime, dict[str, int]] | None = field(default=None, init=False, repr=False)

    # --- GET /admin/rollout ---

    def rollout_view(self) -> RolloutView:
        raw = self.store.read()
        flags, _warnings = parse_flags(raw)
        now = self.clock()
        window = timedelta(minutes=flags.rollback_window_minutes)

        def read(conn: psycopg.Connection) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
            require_schema(conn)
            better_auth = primary_health(conn, "better_auth", now=now, window=window)
            supabase = primary_health(conn, "supabase", now=now, window=window)
            verdict = decide(flags, better_auth, supabase, window=window)
            health = {
                "window_minutes": flags.rollback_window_minutes,
                "better_auth_primary": better_auth.figures(),
                "supabase_primary": supabase.figures(),
                "auto_rollback": {"would": verdict.action, "reason": verdict.reason},
            }
            return (
                health,
                canary_figures(conn, now=now, window=window).as_json(),
                plan_status(conn, now=now, window=window),
            )

        health, canary, plan = self.connections.transact("state", read)
        phase = phase_of(flags.as_parameters())
        return RolloutView(
            prefix=getattr(self.store, "prefix", ""),
            phase=phase,
            phase_name=PHASE_NAMES.get(phase) if phase else None,
            flags=[
                FlagBody(flag=f.name, stored=f.stored, in_force=f.in_force, problem=f.problem)
                for f in describe_flags(raw)
            ],
            health=health,
            canary=canary,
            plan=plan,
        )

    # --- PUT /admin/rollout ---

    def change_rollout(self, request: RolloutChange, *, actor: str) -> RolloutChangeReply:
        """Raises InvalidRequest (a bad flag or value: nothing written), Unsafe (a refused phase without
        force), ConfigError (SSM unreadable or a write failed), DatabaseUnavailable / psycopg errors (the
        checks of a phase could not run)."""
        current = self.store.read()
        proposal = self._propose(request, current)
        if proposal.blockers and not request.force and not request.dry_run:
            raise Unsafe(proposal)
        if request.dry_run or not proposal.changes:
            return self._reply(proposal, current, applied=False, audit_ids=[], audit="none", forced=False)
        forced = bool(proposal.blockers)
        applied = apply_changes(
            self.store,
            proposal.changes,
            actor=actor,
            reason=request.reason,
            source="admin-api",
            record_audit=self._record,
            forced=forced,
            clock=self.clock,
        )
        after = {**current, **{c.name: c.new for c in proposal.changes}}
        audit = "written" if applied.audit_ids is not None else "failed"
        return self._reply(proposal, after, applied=True, audit_ids=applied.audit_ids, audit=audit, forced=forced)

    def _propose(self, request: RolloutChange, current: dict[str, str]) -> Proposal:
        if request.flags is not None:
            return propose_flags(current, request.flags)
        if request.phase is None:
            return propose_emergency_rollback(current)
        number, now = request.phase, self.clock()

        def checked(conn: psycopg.Connection) -> Proposal:
            require_schema(conn)
            return propose_phase(current, number, blockers=lambda n, f: phase_blockers(conn, n, f, now=now))

        return self.connections.transact("state", checked)

    def _record(self, entries: Sequence[AuditEntry]) -> list[int] | None:
        # SSM is written already: a failure here must not turn a done change into an error reply.
        try:
            return self.connections.transact("state", lambda conn: record(conn, entries))
        except (AuthMigrationError, psycopg.Error) as exc:
            self.on_audit_failure(entries, exc)
            return None

    @staticmethod
    def _reply(
        proposal: Proposal,
        flags_after: dict[str, str],
        *,
        applied: bool,
        audit_ids: list[int] | None,
        audit: str,
        forced: bool,
    ) -> RolloutChangeReply:
        body = proposal.as_json()
        return RolloutChangeReply.model_validate(
            {
                **body,
                "applied": applied,
                "forced": forced,
                "audit_ids": audit_ids,
                "audit": audit,
                "phase": phase_of(parse_flags(flags_after)[0].as_parameters()),
            }
        )

    # --- GET /admin/stats, /admin/migrations, /admin/rollout/history (the dashboard's lists) ---

    def stats(self) -> dict[str, Any]:
        """The document's MigrationStats: users per system, validated, completion rate, open gaps."""
        return self.connections.transact("state", lambda conn: migration_stats(conn).as_dict())

    def cutover(self) -> dict[str, Any]:
        """The cutover's figures: each operation over the health window (session exchanges and hash upgrades
        beside signups and logins), the session copy, and the passwords still held as bcrypt hashes."""
        flags, _warnings = parse_flags(self.store.read())
        now = self.clock()
        window = timedelta(minutes=flags.rollback_window_minutes)

        def read(conn: psycopg.Connection) -> dict[str, Any]:
            require_schema(conn)
            return {
                "operations": [f.as_json() for f in operation_figures(conn, now=now, window=window)],
                "sessions": session_copy_figures(conn).as_json(),
            }

        body = self.connections.transact("state", read)
        if self._hash_counts is None or now - self._hash_counts[0] >= HASH_COUNTS_MAX_AGE:
            self._hash_counts = (now, self.connections.transact("target", credential_hash_counts))
        read_at, hashes = self._hash_counts
        return {
            "window_minutes": flags.rollback_window_minutes,
            "session_exchange_enabled": flags.session_exchange,
            "hash_upgrade_enabled": flags.hash_upgrade,
            **body,
            "passwords": {**hashes, "read_at": read_at.isoformat()},
        }

    def migrations(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """The newest migrations first, with their progress."""

        def read(conn: psycopg.Connection) -> list[dict[str, Any]]:
            with conn.cursor(row_factory=dict_row) as cur:
                return cur.execute(
                    """SELECT id AS migration_id, status, source, target, dry_run, processed_count, error_count,
                              batches_done, batches_total, batches_failed, created_at, completed_at
                       FROM migration_states ORDER BY created_at DESC, id DESC LIMIT %s""",
                    (limit,),
                ).fetchall()

        return [_jsonable(row) for row in self.connections.transact("state", read)]

    def history(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """The newest audited flag changes (whitelist values withheld: they are emails)."""
        rows = self.connections.transact("state", lambda conn: audit_history(conn, limit=limit))
        shown = []
        for raw in rows:
            row = _jsonable(raw)
            if row["flag"] == "CANARY_WHITELIST":
                row["old_value"] = row["new_value"] = "(emails withheld)"
            shown.append(row)
        return shown

    # --- GET /admin/migrations/{id} ---

    def migration(self, migration_id: str) -> MigrationReport:
        """Raises InvalidRequest (a malformed id), NotFound."""
        report = migration_report(migration_id, EngineContext(connections=self.connections))
        return MigrationReport.model_validate(report)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
