"""Postgres connections and the versioned SQL migrations of the migration-state database."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import psycopg

from auth_migration.exceptions import ConfigError, DatabaseUnavailable, TransientError

#: Any fixed 64-bit key: serialises concurrent `db upgrade` runs (two deploys at once).
_UPGRADE_LOCK_KEY = 0x4155_5448_4D49_4752

#: SQLSTATE classes worth a retry: connection (08), serialization/deadlock (40), resources (53),
#: operator intervention such as admin shutdown (57), lock not available (55P03).
_TRANSIENT_PREFIXES = ("08", "40", "53", "57")
_TRANSIENT_CODES = frozenset({"55P03"})


def connect(url: str, *, autocommit: bool = False, application_name: str = "auth-migration") -> psycopg.Connection:
    """Open a connection; an unreachable server becomes DatabaseUnavailable (message without secrets)."""
    try:
        # prepare_threshold=None: psycopg would prepare a statement after 5 runs, and Postgres then keeps
        # the plan it made while the target was nearly empty (a seq scan + hash join) for the life of
        # the warm connection: batch look-ups went from 1.6 ms to 22 ms as the target filled (bench/).
        return psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=5,
            application_name=application_name,
            prepare_threshold=None,
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to {_server_of(url)}: {_first_line(exc)}") from exc


def is_transient(exc: BaseException) -> bool:
    """True for database errors a retry can fix (by SQLSTATE class, never by message text)."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        if not state:
            # No SQLSTATE means the client lost the connection (OperationalError, InterfaceError).
            return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return state.startswith(_TRANSIENT_PREFIXES) or state in _TRANSIENT_CODES
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _server_of(url: str) -> str:
    """host:port/db of a URL without credentials, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured database"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname', '')}"


@dataclass(frozen=True, slots=True)
class SchemaMigration:
    version: int
    name: str
    sql: str


def schema_migrations() -> list[SchemaMigration]:
    """The versioned SQL files shipped in auth_migration/sql, in order (NNNN_name.sql)."""
    found: list[SchemaMigration] = []
    for entry in resources.files("auth_migration.sql").iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append(SchemaMigration(int(entry.name[:4]), entry.name[5:-4], entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def upgrade(conn: psycopg.Connection) -> list[str]:
    """Apply every schema migration not yet applied, each in its own transaction; returns their names.

    Idempotent and safe to run concurrently: an advisory lock makes a second runner wait, then find
    nothing left to do.
    """
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_UPGRADE_LOCK_KEY,))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in schema_migrations():
            if migration.version in done:
                continue
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied_now.append(f"{migration.version:04d}_{migration.name}")
    return applied_now


@functools.cache
def _latest_schema_version() -> int:
    # The files ship with the code: reading them once per process is enough.
    return schema_migrations()[-1].version


def require_schema(conn: psycopg.Connection) -> None:
    """Fail with a clear message when `db upgrade` has not been run on this database."""
    row = conn.execute(
        "SELECT to_regclass('schema_migrations') IS NOT NULL AND to_regclass('migration_states') IS NOT NULL"
    ).fetchone()
    if not row or not row[0]:
        raise ConfigError("migration state tables are missing: run `auth-migrate db upgrade` first")
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    assert row is not None  # an aggregate always returns a row
    # A state database older than this code lacks columns it writes: say so instead of a SQL error.
    latest = _latest_schema_version()
    if int(row[0]) < latest:
        raise ConfigError(
            f"migration state schema is at version {row[0]}, this code needs {latest}: run `auth-migrate db upgrade`"
        )
