"""What each system holds, read straight from its database, and Better-Auth writes with a chosen id.

Both HTTP APIs answer "unknown user" and "wrong password" identically, and neither offers a cheap
exact lookup (Better-Auth has none without its admin plugin; GoTrue's admin list is a paged substring
filter), so "who holds this email" is answered by one index probe on each system's own table: GoTrue's
`auth.users` (OLD_DATABASE_URL, the bulk source) and Better-Auth's `user` (BETTER_AUTH_DATABASE_URL).
That also keeps working when a system's HTTP server is down but its database is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from auth_migration.backends.base import BackendUser
from auth_migration.models import TargetAccount, TargetUser
from auth_migration.names import display_name
from auth_migration.targets.better_auth import BetterAuthTarget, TargetCapabilities
from auth_migration.transforms import CREDENTIAL_PROVIDER, account_id_for

__all__ = [
    "NewUser",
    "credential_hash",
    "credential_hash_counts",
    "find_better_auth_user",
    "find_supabase_user",
    "insert_better_auth_user",
    "metadata_json",
    "replace_credential_hash",
    "supabase_hash",
    "update_better_auth_user",
]


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user to write into a system with an id the other system already gave them."""

    id: str
    email: str
    password_hash: str | None
    email_verified: bool
    metadata: Mapping[str, Any]
    #: Stamped on the new rows (createdAt/updatedAt): the caller's clock, read when the user was made.
    created_at: datetime


def find_better_auth_user(
    conn: psycopg.Connection, *, email: str | None = None, user_id: str | None = None
) -> BackendUser | None:
    """Better-Auth's `user` row by exact (lowercased) email or by id; emails there are always lowercase."""
    if user_id is not None:
        row = conn.execute('SELECT id, email, "emailVerified", name FROM "user" WHERE id = %s', (user_id,)).fetchone()
    elif email is not None:
        row = conn.execute(
            'SELECT id, email, "emailVerified", name FROM "user" WHERE email = %s', (email.strip().lower(),)
        ).fetchone()
    else:
        raise ValueError("email or user_id is required")
    if row is None:
        return None
    return BackendUser(id=row[0], email=row[1], email_verified=bool(row[2]), name=row[3])


def find_supabase_user(
    conn: psycopg.Connection, *, email: str | None = None, user_id: str | None = None
) -> BackendUser | None:
    """A live (not soft-deleted) `auth.users` row by email or id.

    The email probe uses GoTrue's unique index on `email` (GoTrue stores emails lowercased); rows that an
    import wrote in mixed case are found by the bulk migration's case-conflict check instead.
    """
    base = """SELECT id::text, email, email_confirmed_at IS NOT NULL, raw_user_meta_data
              FROM auth.users WHERE deleted_at IS NULL AND """
    if user_id is not None:
        row = conn.execute(base + "id::text = %s", (user_id,)).fetchone()
    elif email is not None:
        row = conn.execute(base + "email = %s AND is_sso_user = false", (email.strip().lower(),)).fetchone()
    else:
        raise ValueError("email or user_id is required")
    if row is None:
        return None
    metadata = row[3] if isinstance(row[3], dict) else {}
    return BackendUser(id=row[0], email=row[1] or "", email_verified=bool(row[2]), metadata=metadata)


def supabase_hash(conn: psycopg.Connection, user_id: str) -> str | None:
    """The bcrypt hash GoTrue holds for a user (what the bulk migration carries over)."""
    row = conn.execute(
        "SELECT encrypted_password FROM auth.users WHERE id::text = %s AND deleted_at IS NULL", (user_id,)
    ).fetchone()
    return row[0] if row and row[0] else None


_TARGET = BetterAuthTarget()
# Lazy and dual-write users carry no ban; the capability probe (an information_schema query) is skipped.
_NO_BANS = TargetCapabilities()


def insert_better_auth_user(conn: psycopg.Connection, user: NewUser) -> bool:
    """Insert the Better-Auth `user` (and its credential account when a hash is known) with the given id.

    Returns False when a user with this id already exists (left untouched: idempotent by id). An email
    held by ANOTHER id raises psycopg's UniqueViolation, which the caller turns into a conflict.
    """
    accounts = []
    if user.password_hash:
        accounts.append(
            TargetAccount(
                id=account_id_for(CREDENTIAL_PROVIDER, user.id),
                provider_id=CREDENTIAL_PROVIDER,
                account_id=user.id,
                password=user.password_hash,
            )
        )
    draft = TargetUser(
        id=user.id,
        email=user.email.strip().lower(),
        name=display_name(user.email, user.metadata),
        email_verified=user.email_verified,
        image=None,
        created_at=user.created_at,
        updated_at=user.created_at,
        accounts=accounts,
        metadata=dict(user.metadata),
    )
    return bool(_TARGET.insert(conn, [draft], _NO_BANS))


def update_better_auth_user(conn: psycopg.Connection, user_id: str, *, email_verified: bool, name: str) -> None:
    conn.execute(
        'UPDATE "user" SET "emailVerified" = %s, name = %s, "updatedAt" = now() WHERE id = %s',
        (email_verified, name, user_id),
    )


def credential_hash(conn: psycopg.Connection, user_id: str) -> str | None:
    """The password hash of the user's Better-Auth credential account, or None."""
    row = conn.execute(
        'SELECT password FROM account WHERE "userId" = %s AND "providerId" = %s', (user_id, CREDENTIAL_PROVIDER)
    ).fetchone()
    return row[0] if row and row[0] else None


def replace_credential_hash(conn: psycopg.Connection, user_id: str, old: str, new: str) -> bool:
    """Swap the credential account's hash `old` for `new`; False when it no longer holds `old`."""
    cur = conn.execute(
        """UPDATE account SET password = %s, "updatedAt" = now()
           WHERE "userId" = %s AND "providerId" = %s AND password = %s""",
        (new, user_id, CREDENTIAL_PROVIDER, old),
    )
    return cur.rowcount == 1


def credential_hash_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Better-Auth credential accounts by hash kind: Supabase bcrypt still to upgrade, and the rest."""
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE password ~ '^\\$2[aby]\\$'),
                  count(*) FILTER (WHERE password IS NOT NULL AND password !~ '^\\$2[aby]\\$')
           FROM account WHERE "providerId" = %s""",
        (CREDENTIAL_PROVIDER,),
    ).fetchone()
    assert row is not None
    return {"bcrypt_hashes": int(row[0]), "better_auth_hashes": int(row[1])}


def metadata_json(metadata: Mapping[str, Any]) -> str:
    return json.dumps(dict(metadata), default=str, separators=(",", ":"))
