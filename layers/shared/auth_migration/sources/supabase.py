"""Supabase Auth as a source: auth.users joined with auth.identities, read over Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from auth_migration.exceptions import ConfigError
from auth_migration.models import SourceIdentity, SourceUser
from auth_migration.sources.keyset import boundaries

_USERS = sql.SQL("auth.users")

# The `email` identity mirrors the user's own email/password: the credential account covers it.
# Identities come back as one JSON array per user so a batch is a single round trip.
_FETCH = """
SELECT u.id::text AS id, u.email, u.encrypted_password, u.email_confirmed_at, u.phone,
       u.raw_user_meta_data, u.raw_app_meta_data, u.created_at, u.updated_at,
       coalesce(u.is_anonymous, false) AS is_anonymous, u.deleted_at, u.banned_until,
       coalesce((SELECT json_agg(json_build_object('provider', i.provider, 'provider_id', i.provider_id)
                                 ORDER BY i.provider, i.provider_id)
                 FROM auth.identities i
                 WHERE i.user_id = u.id AND i.provider <> 'email'), '[]'::json) AS identities
FROM auth.users u
WHERE {after} u.id <= %(upto)s::uuid
ORDER BY u.id
"""


class SupabaseSource:
    name = "supabase"

    def check(self, conn: psycopg.Connection) -> None:
        row = conn.execute(
            "SELECT to_regclass('auth.users') IS NOT NULL, to_regclass('auth.identities') IS NOT NULL"
        ).fetchone()
        if not row or not all(row):
            raise ConfigError("source 'supabase' needs auth.users and auth.identities in OLD_DATABASE_URL")

    def batch_boundaries(self, conn: psycopg.Connection, after_id: str | None, batch_size: int) -> Iterator[str]:
        return boundaries(conn, _USERS, "uuid", after_id, batch_size)

    def fetch_range(self, conn: psycopg.Connection, after_id: str | None, upto_id: str) -> list[SourceUser]:
        after = "u.id > %(after)s::uuid AND" if after_id is not None else ""
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(_FETCH.format(after=after).encode(), {"after": after_id, "upto": upto_id})
            return [_to_source_user(row) for row in cur]

    def email_collisions(self, conn: psycopg.Connection) -> Iterator[tuple[str, list[str]]]:
        # Deleted and anonymous users are skipped anyway, so they cannot collide with anyone.
        rows = conn.execute(
            """SELECT lower(email), array_agg(id::text ORDER BY id) FROM auth.users
               WHERE email IS NOT NULL AND email <> '' AND deleted_at IS NULL
                     AND NOT coalesce(is_anonymous, false)
               GROUP BY lower(email) HAVING count(*) > 1"""
        )
        for email, ids in rows:
            yield str(email), list(ids)


def _to_source_user(row: dict[str, Any]) -> SourceUser:
    identities = tuple(
        SourceIdentity(provider=str(i["provider"]), provider_id=str(i["provider_id"]))
        for i in row["identities"] or []
        if i.get("provider") and i.get("provider_id") is not None
    )
    return SourceUser(
        id=row["id"],
        email=row["email"] or None,
        password_hash=row["encrypted_password"] or None,
        email_confirmed_at=row["email_confirmed_at"],
        phone=row["phone"] or None,
        user_metadata=row["raw_user_meta_data"],
        app_metadata=row["raw_app_meta_data"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        is_anonymous=bool(row["is_anonymous"]),
        deleted_at=row["deleted_at"],
        banned_until=row["banned_until"],
        identities=identities,
    )
