"""One database set up for a local migration: Supabase's auth schema, Better-Auth's tables, our state."""

from __future__ import annotations

from pathlib import Path

import psycopg

from auth_migration.store import upgrade
from auth_migration_ops.datakit.supabase_data import create_profiles_schema, create_supabase_schema

#: Better-Auth 1.7.25's own DDL for its four tables (a test proves it equals what Better-Auth creates).
SCHEMA_SQL: Path = Path(__file__).resolve().parent / "sql" / "better_auth_schema.sql"


def create_better_auth_tables_from_sql(url: str) -> None:
    """Better-Auth's own tables from the bundled DDL (no Node; a test proves it equals Better-Auth's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL.read_bytes())


def prepare_migration_database(url: str, *, profiles: bool = False) -> None:
    """Source (auth schema, optionally the legacy profiles table), target and state in one database."""
    create_supabase_schema(url)
    if profiles:
        create_profiles_schema(url, with_password_hash=True)
    create_better_auth_tables_from_sql(url)
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
