"""flag_changes: one row per flag change, who made it, when, why and from where."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from auth_migration.exceptions import NotFound
from auth_migration.rollout.changes import FlagChange

__all__ = ["AuditEntry", "change_by_id", "history", "record"]

Source = Literal["cli", "admin-api", "auto-rollback"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one change leaves in flag_changes (the row's id and time are the database's)."""

    change: FlagChange
    actor: str
    reason: str
    source: Source
    changed_at: datetime
    forced: bool = False
    details: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "flag": self.change.name,
            "old": self.change.old,
            "new": self.change.new,
            "actor": self.actor,
            "reason": self.reason,
            "source": self.source,
            "changed_at": self.changed_at.isoformat(),
            "forced": self.forced,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditEntry:
        return cls(
            FlagChange(data["flag"], data["old"], data["new"]),
            data["actor"],
            data["reason"],
            data["source"],
            datetime.fromisoformat(data["changed_at"]),
            bool(data.get("forced")),
            data.get("details"),
        )


def record(conn: psycopg.Connection, entries: Sequence[AuditEntry]) -> list[int]:
    """Insert the rows (one transaction); returns their ids in order."""
    ids: list[int] = []
    with conn.transaction():
        for e in entries:
            row = conn.execute(
                """INSERT INTO flag_changes (changed_at, flag, old_value, new_value, actor, reason, source, forced,
                                             details)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (
                    e.changed_at,
                    e.change.name,
                    e.change.old,
                    e.change.new,
                    e.actor,
                    e.reason,
                    e.source,
                    e.forced,
                    Jsonb(e.details) if e.details is not None else None,
                ),
            ).fetchone()
            assert row is not None  # INSERT ... RETURNING one row
            ids.append(int(row[0]))
    return ids


def history(conn: psycopg.Connection, *, flag: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest changes first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT id, changed_at, flag, old_value, new_value, actor, reason, source, forced, details
               FROM flag_changes WHERE %(flag)s::text IS NULL OR flag = %(flag)s
               ORDER BY changed_at DESC, id DESC LIMIT %(limit)s""",
            {"flag": flag, "limit": limit},
        ).fetchall()


def change_by_id(conn: psycopg.Connection, change_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, flag, old_value, new_value, changed_at FROM flag_changes WHERE id = %s", (change_id,)
        ).fetchone()
    if row is None:
        raise NotFound(f"no flag change with id {change_id}")
    return row


def last_changes(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """The newest change of each flag (for `flags show`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT DISTINCT ON (flag) id, flag, changed_at, actor, reason, source
               FROM flag_changes ORDER BY flag, changed_at DESC, id DESC"""
        ).fetchall()
    return {str(r["flag"]): r for r in rows}
