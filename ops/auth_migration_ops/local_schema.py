"""One database set up for a local migration: Supabase's auth schema, Better-Auth's tables, our state."""

from __future__ import annotations

import psycopg

from auth_migration.store import upgrade
from auth_migration_ops.better_auth_server import SCHEMA_SQL
from auth_migration_ops.supabase_data import create_profiles_schema, create_supabase_schema


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
