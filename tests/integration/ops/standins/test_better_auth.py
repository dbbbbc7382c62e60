"""The real Better-Auth server as the migration's target: its schema matches the bundled SQL file, and
users written by SQL with their Supabase bcrypt hash sign in with their old password."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import bcrypt
import psycopg
import pytest

from auth_migration_ops.datakit.schemas import SCHEMA_SQL
from auth_migration_ops.standins.better_auth import (
    BetterAuthServer,
    create_better_auth_tables,
    sign_in,
    sign_up,
)

StartBetterAuth = Callable[..., BetterAuthServer]

TABLES = ("user", "account", "session", "verification")
PASSWORD = "correct horse battery staple"


# --- builders -------------------------------------------------------------------------------------


def supabase_bcrypt_hash(password: str, prefix: str) -> str:
    """A hash as GoTrue stores it: bcrypt, cost 10, with the given `$2?$` variant."""
    # Python's bcrypt makes 2a and 2b; 2y is the same algorithm under PHP's name.
    made = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10, prefix=b"2b")).decode()
    return f"${prefix}${made[4:]}"


def insert_migrated_user(database_url: str, *, email: str, password_hash: str, user_id: str | None = None) -> str:
    """Write a user the way the bulk migration does: Supabase's id kept, credential account with the hash."""
    user_id = user_id or str(uuid.uuid4())
    with psycopg.connect(database_url) as conn:
        conn.execute(
            'INSERT INTO "user" (id, name, email, "emailVerified") VALUES (%s, %s, %s, true)',
            (user_id, email.split("@", maxsplit=1)[0], email),
        )
        conn.execute(
            'INSERT INTO account (id, "accountId", "providerId", "userId", password, "updatedAt")'
            " VALUES (%s, %s, 'credential', %s, %s, now())",
            (str(uuid.uuid4()), user_id, user_id, password_hash),
        )
    return user_id


def create_tables_from_bundled_sql(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(SCHEMA_SQL.read_text())


def schema_of(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Columns, constraints and indexes of Better-Auth's tables, comparable between two databases."""
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = ANY(%s)"
            " ORDER BY table_name, ordinal_position",
            (list(TABLES),),
        ).fetchall()
        # pg_get_constraintdef spells out PK / UNIQUE columns and FK targets with their ON DELETE rule.
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)"
            " FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text = ANY(%s)"
            " ORDER BY 1, 2",
            ([f'"{t}"' if t == "user" else t for t in TABLES],),
        ).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename = ANY(%s) ORDER BY 1, 2",
            (list(TABLES),),
        ).fetchall()
    return {"columns": columns, "constraints": constraints, "indexes": indexes}


# --- the schema -----------------------------------------------------------------------------------


def test_bundled_sql_schema_equals_what_better_auth_creates(
    make_database: Callable[[], str], better_auth_installed: None
) -> None:
    by_better_auth = make_database()
    by_sql_file = make_database()

    create_better_auth_tables(by_better_auth)
    create_tables_from_bundled_sql(by_sql_file)

    expected = schema_of(by_better_auth)
    assert {row[0] for row in expected["columns"]} == set(TABLES)
    assert schema_of(by_sql_file) == expected
    assert ("account", "account_userId_fkey", "f") in {row[:3] for row in expected["constraints"]}


def test_bundled_sql_schema_is_idempotent_and_leaves_better_auth_nothing_to_add(
    database: str, better_auth_installed: None
) -> None:
    create_tables_from_bundled_sql(database)
    before = schema_of(database)

    create_tables_from_bundled_sql(database)
    create_better_auth_tables(database)

    assert schema_of(database) == before


# --- migrated users keep their password -----------------------------------------------------------


@pytest.mark.parametrize("prefix", ["2a", "2b", "2y"])
def test_user_migrated_with_supabase_bcrypt_hash_signs_in_with_old_password(
    database: str, start_better_auth: StartBetterAuth, prefix: str
) -> None:
    server = start_better_auth(database)
    user_id = insert_migrated_user(
        database, email="ada@example.com", password_hash=supabase_bcrypt_hash(PASSWORD, prefix)
    )

    reply = sign_in(server.base_url, "ada@example.com", PASSWORD)

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["user"]["id"] == user_id
    assert body["user"]["email"] == "ada@example.com"
    assert body["token"]
    assert "better-auth.session_token" in reply.cookies


def test_sign_in_email_is_case_insensitive_for_a_lowercased_stored_email(
    database: str, start_better_auth: StartBetterAuth
) -> None:
    server = start_better_auth(database)
    user_id = insert_migrated_user(
        database, email="grace@example.com", password_hash=supabase_bcrypt_hash(PASSWORD, "2a")
    )

    reply = sign_in(server.base_url, "Grace@Example.COM", PASSWORD)

    assert reply.status_code == 200, reply.text
    assert reply.json()["user"]["id"] == user_id


def test_a_stored_mixed_case_email_cannot_sign_in_so_the_migration_must_lowercase(
    database: str, start_better_auth: StartBetterAuth
) -> None:
    server = start_better_auth(database)
    insert_migrated_user(database, email="Linus@Example.com", password_hash=supabase_bcrypt_hash(PASSWORD, "2a"))

    reply = sign_in(server.base_url, "Linus@Example.com", PASSWORD)

    assert reply.status_code == 401


def test_wrong_password_and_unknown_email_get_the_same_401(database: str, start_better_auth: StartBetterAuth) -> None:
    server = start_better_auth(database)
    insert_migrated_user(database, email="alan@example.com", password_hash=supabase_bcrypt_hash(PASSWORD, "2b"))

    wrong_password = sign_in(server.base_url, "alan@example.com", "not the password")
    unknown_email = sign_in(server.base_url, "nobody@example.com", PASSWORD)

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json()["code"] == unknown_email.json()["code"] == "INVALID_EMAIL_OR_PASSWORD"


def test_oauth_only_user_gets_the_same_401_on_a_password_sign_in(
    database: str, start_better_auth: StartBetterAuth
) -> None:
    server = start_better_auth(database)
    user_id = str(uuid.uuid4())
    with psycopg.connect(database) as conn:
        conn.execute(
            'INSERT INTO "user" (id, name, email, "emailVerified") VALUES (%s, %s, %s, true)',
            (user_id, "Oauth", "oauth@example.com"),
        )
        conn.execute(
            'INSERT INTO account (id, "accountId", "providerId", "userId", "updatedAt")'
            " VALUES (%s, '109876543210', 'google', %s, now())",
            (str(uuid.uuid4()), user_id),
        )

    reply = sign_in(server.base_url, "oauth@example.com", PASSWORD)

    assert reply.status_code == 401
    assert reply.json()["code"] == "INVALID_EMAIL_OR_PASSWORD"


def test_a_hash_neither_bcrypt_nor_scrypt_breaks_sign_in_so_the_migration_must_not_copy_it(
    database: str, start_better_auth: StartBetterAuth
) -> None:
    server = start_better_auth(database)
    insert_migrated_user(
        database, email="argon@example.com", password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
    )

    reply = sign_in(server.base_url, "argon@example.com", PASSWORD)

    assert reply.status_code == 500
    assert server.running


def test_native_sign_up_then_sign_in(database: str, start_better_auth: StartBetterAuth) -> None:
    server = start_better_auth(database)

    created = sign_up(server.base_url, "barbara@example.com", PASSWORD, "Barbara")
    signed_in = sign_in(server.base_url, "barbara@example.com", PASSWORD)

    assert created.status_code == 200, created.text
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["id"] == created.json()["user"]["id"]
    # Better-Auth's own hashes are scrypt, not bcrypt: the verify fallback is what accepts them.
    with psycopg.connect(database) as conn:
        row = conn.execute(
            'SELECT password FROM account WHERE "userId" = %s AND "providerId" = \'credential\'',
            (created.json()["user"]["id"],),
        ).fetchone()
    assert row is not None
    assert not row[0].startswith("$2")


def test_sign_up_with_a_taken_email_is_refused(database: str, start_better_auth: StartBetterAuth) -> None:
    server = start_better_auth(database)
    insert_migrated_user(database, email="edsger@example.com", password_hash=supabase_bcrypt_hash(PASSWORD, "2a"))

    reply = sign_up(server.base_url, "edsger@example.com", PASSWORD, "Edsger")

    assert reply.status_code == 422
    assert reply.json()["code"] == "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL"


def test_bcrypt_user_signs_in_on_a_database_built_from_the_bundled_sql(
    database: str, start_better_auth: StartBetterAuth
) -> None:
    create_tables_from_bundled_sql(database)
    server = start_better_auth(database, migrate=False)
    user_id = insert_migrated_user(
        database, email="margaret@example.com", password_hash=supabase_bcrypt_hash(PASSWORD, "2a")
    )

    reply = sign_in(server.base_url, "margaret@example.com", PASSWORD)

    assert reply.status_code == 200, reply.text
    assert reply.json()["user"]["id"] == user_id


def test_production_rate_limit_counts_sign_ins_per_forwarded_client_ip(
    database: str, start_better_auth: StartBetterAuth
) -> None:
    # Why the Login function must forward the caller's IP: without it all users share one bucket.
    server = start_better_auth(database, rate_limit=True)

    same_client = [sign_in(server.base_url, "x@example.com", PASSWORD, client_ip="203.0.113.7") for _ in range(4)]
    other_client = sign_in(server.base_url, "x@example.com", PASSWORD, client_ip="203.0.113.8")

    assert [reply.status_code for reply in same_client] == [401, 401, 401, 429]
    assert same_client[-1].headers["x-retry-after"].isdigit()
    assert other_client.status_code == 401


# --- the server process ---------------------------------------------------------------------------


def test_start_without_migration_on_a_database_without_tables_fails_with_the_missing_tables(
    database: str, better_auth_installed: None
) -> None:
    server = BetterAuthServer(database, migrate=False)

    with pytest.raises(RuntimeError, match="Database schema mismatch") as failure:
        server.start()

    assert "Missing tables" in str(failure.value)
    assert not server.running


def test_start_fails_with_the_servers_stderr_when_the_database_is_unreachable(
    better_auth_installed: None,
) -> None:
    server = BetterAuthServer("postgresql://postgres@127.0.0.1:1/nowhere", startup_timeout=15)

    with pytest.raises(RuntimeError, match="exited with code") as failure:
        server.start()

    assert "ECONNREFUSED" in str(failure.value)
    assert not server.running


def test_context_manager_stops_the_server(database: str, better_auth_installed: None) -> None:
    with BetterAuthServer(database) as server:
        assert server.running
        assert server.auth_url == f"{server.base_url}/api/auth"

    assert not server.running
