"""SQL over migration_states / migration_batches shared by planning, batches, rollback and reports."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from auth_migration.exceptions import InvalidRequest, NotFound

TERMINAL = frozenset({"completed", "completed_with_errors", "failed", "rolled_back"})


@dataclass(frozen=True, slots=True)
class Migration:
    id: str
    status: str
    source: str
    target: str
    dry_run: bool
    batch_size: int
    planned_through_id: str | None
    batches_total: int
    options: dict[str, Any]
    #: The instant time-dependent rules (bans) are judged against, for every batch of this migration.
    as_of: datetime


def new_migration_id(now: datetime) -> str:
    return f"mig_{now:%Y%m%dT%H%M%S}_{secrets.token_hex(3)}"


def validate_migration_id(migration_id: object) -> str:
    if not isinstance(migration_id, str) or not migration_id or len(migration_id) > 100:
        raise InvalidRequest("migration_id must be a non-empty string of at most 100 characters")
    return migration_id


def load_migration(conn: psycopg.Connection, migration_id: str, *, lock: bool = False) -> Migration:
    query = """SELECT id, status, source, target, dry_run, batch_size, planned_through_id, batches_total, options,
                      coalesce(as_of, created_at) AS as_of
               FROM migration_states WHERE id = %s""" + (" FOR UPDATE" if lock else "")
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, (validate_migration_id(migration_id),)).fetchone()
    if row is None:
        raise NotFound(f"no migration with id {migration_id!r}")
    return Migration(**row)


def finish_status_sql(batches_done: str = "batches_done", error_count: str = "error_count") -> str:
    """SET fragment moving a running migration to its final status once every batch is settled.

    batches_done / error_count: the SQL for those counters' values, when the same UPDATE also changes
    them (SET expressions see the row before the update), e.g. "batches_done + 1".
    """
    settled = f"status = 'running' AND {batches_done} + batches_failed >= batches_total"
    return f"""status = CASE WHEN {settled}
                            THEN CASE WHEN batches_failed > 0 THEN 'failed'
                                      WHEN {error_count} > 0 THEN 'completed_with_errors'
                                      ELSE 'completed' END
                            ELSE status END,
              completed_at = CASE WHEN {settled} THEN now() ELSE completed_at END,
              updated_at = now()"""
