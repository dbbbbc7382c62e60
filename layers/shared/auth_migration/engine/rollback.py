"""Rollback by migration id: delete exactly the target users this migration created, and its tracking rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg import sql

from auth_migration.engine.context import EngineContext
from auth_migration.engine.state import load_migration
from auth_migration.store import require_schema
from auth_migration.targets import BetterAuthTarget, get_target
from auth_migration.targets.supabase import SupabaseTarget

_CHUNK = 1000


@dataclass
class RollbackResult:
    migration_id: str
    status: str
    users_deleted: int = 0
    tracking_rows_deleted: int = 0


def rollback_migration(migration_id: str, ctx: EngineContext) -> RollbackResult:
    """Idempotent and resumable: run it again after a crash and it finishes the job.

    Users adopted (not created) by this migration keep their target rows; users of any other
    migration, of lazy migration or of dual-write are never touched.
    """
    conns = ctx.connections
    state = conns.state
    require_schema(state)
    migration = load_migration(state, migration_id)
    with state.transaction():
        state.execute(
            "UPDATE migration_states SET status = 'rolling_back', updated_at = now() WHERE id = %s", (migration_id,)
        )
    # Wait for batches in flight: each holds its batch row lock until it commits. Later deliveries
    # see 'rolling_back' and do nothing.
    with state.transaction():
        state.execute("SELECT 1 FROM migration_batches WHERE migration_id = %s FOR UPDATE", (migration_id,))

    result = RollbackResult(migration_id, "rolling_back")
    if migration.target == SupabaseTarget.name:
        from auth_migration.engine.supabase_batch import rollback_supabase

        result.users_deleted, result.tracking_rows_deleted = rollback_supabase(ctx, migration_id, migration.options)
        return _rolled_back(state, result)
    target = get_target(migration.target)
    shared = conns.shared_target
    result.users_deleted += _converge_intents(ctx, migration_id, target)
    while True:
        rows = state.execute(
            """SELECT original_id, new_auth_id, created_target FROM migrated_users
               WHERE migration_id = %s ORDER BY original_id LIMIT %s""",
            (migration_id, _CHUNK),
        ).fetchall()
        if not rows:
            break
        created = [new_id for _, new_id, was_created in rows if was_created]
        originals = [orig for orig, _, _ in rows]
        if shared:
            with state.transaction():
                result.users_deleted += target.delete(state, created)
                result.tracking_rows_deleted += _forget(state, migration_id, originals)
        else:
            # Target first: a crash between the two leaves tracking rows whose users are gone, and
            # the next run deletes nothing more and drops them. Never the other way round.
            with conns.target.transaction():
                result.users_deleted += target.delete(conns.target, created)
            with state.transaction():
                result.tracking_rows_deleted += _forget(state, migration_id, originals)
    return _rolled_back(state, result)


def _rolled_back(state: psycopg.Connection, result: RollbackResult) -> RollbackResult:
    migration_id = result.migration_id
    with state.transaction():
        state.execute(
            """UPDATE migration_states SET status = 'rolled_back', updated_at = now(), completed_at = now()
               WHERE id = %s""",
            (migration_id,),
        )
    result.status = "rolled_back"
    return result


def _converge_intents(ctx: EngineContext, migration_id: str, target: BetterAuthTarget) -> int:
    """Delete the target users this migration's interrupted batches created; returns how many.

    A two-database batch commits its intent (pending_create) before writing the target and clears it
    when it records the outcome; a batch killed in between leaves target users no tracking row
    names. What a redelivered batch would conclude holds here too: an id of the intent that the
    target holds and nobody tracks was created by this migration. Ids someone tracks are left to
    their tracking row (this migration's own are deleted by the main loop). The batch row locks the
    caller took first mean no live worker of this migration is inside that window now.
    Target first, then the intent is cleared: a crash in between re-runs to the same end."""
    conns = ctx.connections
    state = conns.state
    deleted = 0
    last_no = 0
    while True:
        rows = state.execute(
            """SELECT batch_no, pending_create FROM migration_batches
               WHERE migration_id = %s AND pending_create IS NOT NULL AND batch_no > %s
               ORDER BY batch_no LIMIT %s""",
            (migration_id, last_no, max(1, _CHUNK // 100)),
        ).fetchall()
        if not rows:
            return deleted
        batch_nos = [no for no, _ in rows]
        ids = [i for _, pending in rows for i in pending]
        untracked = [
            r[0]
            for r in state.execute(
                """SELECT k.id FROM unnest(%b::text[]) AS k(id)
                   WHERE NOT EXISTS (SELECT 1 FROM migrated_users m WHERE m.original_id = k.id)""",
                (ids,),
            )
        ]
        with conns.target.transaction():
            deleted += target.delete(conns.target, untracked)
        with state.transaction():
            state.execute(
                "UPDATE migration_batches SET pending_create = NULL WHERE migration_id = %s AND batch_no = ANY(%s)",
                (migration_id, batch_nos),
            )
        last_no = batch_nos[-1]


def _forget(
    state: psycopg.Connection,
    migration_id: str,
    originals: list[str],
    *,
    system: Literal["better_auth", "supabase"] = "better_auth",
) -> int:
    """Drop the tracking rows of these users and mark them rolled back in `system` (the target's column)."""
    migrated = sql.Identifier(f"{system}_migrated")
    state.execute(
        sql.SQL(
            """UPDATE user_migration_status SET state = 'rolled_back', {} = false,
                  data_validated = false, updated_at = now()
               WHERE user_id = ANY(%s) AND migration_id = %s"""
        ).format(migrated),
        (originals, migration_id),
    )
    return state.execute(
        "DELETE FROM migrated_users WHERE migration_id = %s AND original_id = ANY(%s)", (migration_id, originals)
    ).rowcount
