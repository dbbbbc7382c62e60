"""Rollback by migration id: delete exactly the target users this migration created, and its tracking rows."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from auth_migration.engine.context import EngineContext
from auth_migration.engine.state import load_migration
from auth_migration.store import require_schema
from auth_migration.targets import get_target

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
    target = get_target(migration.target)
    with state.transaction():
        state.execute(
            "UPDATE migration_states SET status = 'rolling_back', updated_at = now() WHERE id = %s", (migration_id,)
        )
    # Wait for batches in flight: each holds its batch row lock until it commits. Later deliveries
    # see 'rolling_back' and do nothing.
    with state.transaction():
        state.execute("SELECT 1 FROM migration_batches WHERE migration_id = %s FOR UPDATE", (migration_id,))

    result = RollbackResult(migration_id, "rolling_back")
    shared = conns.shared_target
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
    with state.transaction():
        state.execute(
            """UPDATE migration_states SET status = 'rolled_back', updated_at = now(), completed_at = now()
               WHERE id = %s""",
            (migration_id,),
        )
    result.status = "rolled_back"
    return result


def _forget(state: psycopg.Connection, migration_id: str, originals: list[str]) -> int:
    state.execute(
        """UPDATE user_migration_status SET state = 'rolled_back', better_auth_migrated = false,
                  data_validated = false, updated_at = now()
           WHERE user_id = ANY(%s) AND migration_id = %s""",
        (originals, migration_id),
    )
    return state.execute(
        "DELETE FROM migrated_users WHERE migration_id = %s AND original_id = ANY(%s)", (migration_id, originals)
    ).rowcount
