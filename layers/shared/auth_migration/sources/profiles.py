"""The seed's legacy `profiles` table as a source (id, email, names, avatar, optional password hash)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from auth_migration.exceptions import ConfigError
from auth_migration.models import SourceUser
from auth_migration.sources.base import SettledRange
from auth_migration.sources.keyset import boundaries, id_type_of
from auth_migration.validation import ValidationPolicy

_CONFIRMED_AT_UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)

_TABLE = "public.profiles"
_PASSWORD_COLUMN = "password_hash"  # noqa: S105 - a column name, not a secret


class ProfilesSource:
    """Unlike the seed, invalid emails are not filtered out in SQL: they are read so that each lands
    in migration_errors with its reason instead of silently vanishing."""

    name = "profiles"

    def __init__(self) -> None:
        self._id_type = ""
        self._has_password: bool | None = None

    def check(self, conn: psycopg.Connection) -> None:
        self._id_type = id_type_of(conn, _TABLE)
        if not self._id_type:
            raise ConfigError(f"source 'profiles' needs a table {_TABLE} with an id column in OLD_DATABASE_URL")

    def _ensure(self, conn: psycopg.Connection) -> None:
        if not self._id_type:
            self.check(conn)
        if self._has_password is None:
            row = conn.execute(
                """SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s)
                                  AND attname = %s AND NOT attisdropped)""",
                (_TABLE, _PASSWORD_COLUMN),
            ).fetchone()
            self._has_password = bool(row and row[0])

    def batch_boundaries(self, conn: psycopg.Connection, after_id: str | None, batch_size: int) -> Iterator[str]:
        self._ensure(conn)
        return boundaries(conn, sql.SQL(_TABLE), self._id_type, after_id, batch_size)

    def fetch_range(
        self, conn: psycopg.Connection, after_id: str | None, upto_id: str, *, with_migrated: bool = False
    ) -> list[SourceUser]:
        self._ensure(conn)
        id_type = sql.SQL(self._id_type)
        password = sql.Identifier("p", _PASSWORD_COLUMN) if self._has_password else sql.SQL("NULL::text")
        after = sql.SQL("p.id > %(after)s::{} AND").format(id_type) if after_id is not None else sql.SQL("")
        migrated, join = sql.SQL("false"), sql.SQL("")
        if with_migrated:  # an index probe per user (see SupabaseSource)
            migrated = sql.SQL("m.done IS NOT NULL")
            join = sql.SQL(
                "LEFT JOIN LATERAL (SELECT true AS done FROM migrated_users mu "
                "WHERE mu.original_id = p.id::text LIMIT 1) m ON true"
            )
        query = sql.SQL(
            """SELECT p.id::text AS id, p.email, p.username, p.first_name, p.last_name, p.avatar_url,
                      p.created_at, p.updated_at, {password} AS password_hash, {migrated} AS migrated
               FROM {table} p {join} WHERE {after} p.id <= %(upto)s::{id_type} ORDER BY p.id"""
        ).format(password=password, migrated=migrated, table=sql.SQL(_TABLE), join=join, after=after, id_type=id_type)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, {"after": after_id, "upto": upto_id})
            return [_to_source_user(row) for row in cur]

    def fetch_pending(
        self,
        conn: psycopg.Connection,
        after_id: str | None,
        upto_id: str,
        policy: ValidationPolicy,
        *,
        only: Sequence[str] | None = None,
    ) -> tuple[list[SourceUser], int]:
        # No server-side pre-check here: every user comes back, migrated ones marked. settled_ranges never
        # names undecided users here, so `only` is honoured for the protocol's sake, not for speed.
        users = self.fetch_range(conn, after_id, upto_id, with_migrated=True)
        if only is not None:
            wanted = set(only)
            users = [u for u in users if u.id in wanted]
        return users, 0

    def settled_ranges(
        self,
        conn: psycopg.Connection,
        ranges: Sequence[tuple[str | None, str]],
        policy: ValidationPolicy,
        *,
        batch_size: int = 1,
    ) -> list[SettledRange | None]:
        # fetch_pending counts no one here, so every range is left to its batch.
        return [None] * len(ranges)

    def email_collisions(
        self, conn: psycopg.Connection, among: Sequence[str] | None = None
    ) -> Iterator[tuple[str, list[str]]]:
        # Every collision, whatever `among` says: the protocol allows more, and profiles never re-run settled.
        rows = conn.execute(
            sql.SQL(
                """SELECT lower(email), array_agg(id::text ORDER BY id) FROM {} WHERE email IS NOT NULL
                   AND email <> '' GROUP BY lower(email) HAVING count(*) > 1"""
            ).format(sql.SQL(_TABLE))
        )
        for email, ids in rows:
            yield str(email), list(ids)


def _to_source_user(row: dict[str, Any]) -> SourceUser:
    metadata = {key: row[key] for key in ("username", "first_name", "last_name", "avatar_url") if row[key] is not None}
    created = row["created_at"]
    return SourceUser(
        id=row["id"],
        email=row["email"] or None,
        password_hash=row["password_hash"] or None,
        # The seed creates these users with email_confirm: true: the legacy system vouched for them.
        # Only "confirmed or not" reaches the target; a profile without created_at is confirmed at an
        # unknown time, spelled as the epoch rather than a read of today's clock.
        email_confirmed_at=created or _CONFIRMED_AT_UNKNOWN_TIME,
        user_metadata=metadata,
        app_metadata={"provider": "legacy_profiles"},
        created_at=created,
        updated_at=row["updated_at"],
        origin="legacy_profiles",
        migrated=bool(row["migrated"]),
    )
