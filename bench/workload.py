"""The bench's database: one throw-away Postgres database holding the generated Supabase source, the
Better-Auth target and the migration state, reset to an empty target between variants, dropped after.

Source and target live in one database on purpose: the floor (`INSERT ... SELECT`) can only be one
statement there, and it is also the engine's default deployment (every URL on one database, so the
target rows and the tracking row commit in one transaction).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from auth_migration.store import upgrade
from auth_migration_ops.datakit.schemas import create_better_auth_tables_from_sql
from auth_migration_ops.datakit.supabase_data import create_supabase_schema, generate_supabase_users

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

#: Everything a migration writes; TRUNCATE gives every variant an empty target and state in
#: milliseconds, where copying a million-user database per variant would cost a minute each.
_TARGET_TABLES = (
    '"user"',
    "account",
    "session",
    "verification",
    "migrated_users",
    "user_migration_status",
    "migration_errors",
    "migration_email_conflicts",
    "migration_batches",
    "migration_states",
)


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server `server_url` points at."""
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)


@contextmanager
def bench_database(server_url: str, prefix: str = "bench") -> Iterator[str]:
    """Create an empty database named `<prefix>_<random>`, yield its URL, drop it whatever happens."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def prepare(url: str, users: int, *, seed: int = 7) -> int:
    """Supabase schema + `users` generated users, Better-Auth's tables, the state schema; returns the count."""
    create_supabase_schema(url)
    # Past the edge cases the generator needs at least their count; tiny smoke runs stay above it.
    # A bench is a live run: the data is made relative to the wall clock and the engine's start reads the
    # same clock (bans lie 30-90 days either side, far beyond a run's length), as an operator's run would.
    manifest = generate_supabase_users(
        url, users, seed=seed, record_normal_ids=False, credentials_sample=0, reference_time=datetime.now(UTC)
    )
    create_better_auth_tables_from_sql(url)
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
    return manifest.total


def reset_target(url: str) -> None:
    """Empty the target and the state, and checkpoint so the previous variant's dirty pages and WAL
    are written now rather than during the next variant's timing."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE".format(", ".join(_TARGET_TABLES))))
        conn.execute("CHECKPOINT")


@dataclass(frozen=True, slots=True)
class TargetCounts:
    """What a variant left in the target: enough to prove nothing was written twice."""

    users: int
    distinct_ids: int
    distinct_emails: int
    accounts: int
    distinct_accounts: int
    tracking_rows: int
    tracking_created: int

    @property
    def duplicates(self) -> int:
        """Rows beyond one per user/email/account, plus Better-Auth users without exactly one tracking row."""
        return (
            (self.users - self.distinct_ids)
            + (self.users - self.distinct_emails)
            + (self.accounts - self.distinct_accounts)
            + abs(self.users - self.tracking_created)
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "better_auth_users": self.users,
            "distinct_ids": self.distinct_ids,
            "distinct_emails": self.distinct_emails,
            "accounts": self.accounts,
            "distinct_accounts": self.distinct_accounts,
            "migrated_users": self.tracking_rows,
            "migrated_users_created": self.tracking_created,
            "duplicates": self.duplicates,
        }


def target_counts(url: str) -> TargetCounts:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            """SELECT (SELECT count(*) FROM "user"), (SELECT count(DISTINCT id) FROM "user"),
                      (SELECT count(DISTINCT lower(email)) FROM "user"),
                      (SELECT count(*) FROM account),
                      (SELECT count(*) FROM (SELECT DISTINCT "providerId", "accountId" FROM account) a),
                      (SELECT count(*) FROM migrated_users),
                      (SELECT count(*) FROM migrated_users WHERE created_target)"""
        ).fetchone()
    assert row is not None
    return TargetCounts(*(int(v) for v in row))


def server_facts(url: str) -> dict[str, str]:
    """The server settings that move the figures most (commit flush, cache size)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT name, setting || coalesce(unit, '') FROM pg_settings
               WHERE name IN ('server_version', 'shared_buffers', 'synchronous_commit', 'fsync', 'wal_level')"""
        ).fetchall()
    return {str(k): str(v) for k, v in rows}
