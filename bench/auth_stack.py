"""The signup/login benches' stack, outside pytest: one throw-away database, both auth systems, our service.

What tests/integration/plugins/dual_write.py (DualWriteStack) builds for the tests, built here as a
context manager: a fresh database `bench_auth_<random>` on the server `--database-url` names, holding
GoTrue's `auth` schema, Better-Auth's tables and our state (`prepare_migration_database`); the REAL
Better-Auth server (Node) behind a FaultProxy; the GoTrue stand-in with its own fault knobs. Everything
started is stopped, and the database is dropped, whatever happens (also after a failure or Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from auth_migration.backends import BETTER_AUTH, SUPABASE, BetterAuthBackend, SupabaseAuthBackend, SystemName
from auth_migration.connections import Connections
from auth_migration.dual_write.reconcile import Reconciler
from auth_migration.dual_write.service import AuthService
from auth_migration_ops.datakit.schemas import prepare_migration_database
from auth_migration_ops.standins.better_auth import BetterAuthServer
from auth_migration_ops.standins.fault_proxy import FaultProxy
from auth_migration_ops.standins.gotrue import Faults, GoTrueStandIn

__all__ = [
    "DEFAULT_SERVER_URL",
    "AuthStack",
    "LockedRepairQueue",
    "auth_stack",
    "database_url_for",
    "default_server_url",
]

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def default_server_url() -> str:
    """BENCH_DATABASE_URL when set, else the local server."""
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL)


def database_url_for(server_url: str, name: str) -> str:
    """A postgresql:// URL of database `name` on the server `server_url` names (URL or key=value form).

    A URL, not a conninfo string: the Better-Auth server (Node's `pg`) reads DATABASE_URL as a URL.
    """
    params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(server_url).items() if v is not None}
    user, password = params.pop("user", ""), params.pop("password", "")
    host, port = params.pop("host", "127.0.0.1"), params.pop("port", "")
    params.pop("dbname", None)
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    netloc = (auth + "@" if auth else "") + host + (":" + port if port else "")
    query = "?" + urlencode(params) if params else ""
    return f"postgresql://{netloc}/{quote(name, safe='')}{query}"


class LockedRepairQueue:
    """Reconcile's queue in memory, shared by every service thread (what one SQS queue is in AWS)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self.sent = 0

    def send(self, message: Mapping[str, Any]) -> None:
        with self._lock:
            self._messages.append(dict(message))
            self.sent += 1

    def take_all(self) -> list[dict[str, Any]]:
        """Every queued message, oldest first; the queue is empty after."""
        with self._lock:
            messages, self._messages = self._messages, []
        return messages

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)


@dataclass
class AuthStack:
    """A started stack. Build services, reconcilers and backends from it; set faults per system."""

    database_url: str
    gotrue: GoTrueStandIn
    better_auth_server: BetterAuthServer
    proxy: FaultProxy
    queue: LockedRepairQueue = field(default_factory=LockedRepairQueue)
    _closeables: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- clients, as one Lambda container builds them -------------------------------------------------

    def supabase_backend(self) -> SupabaseAuthBackend:
        backend = SupabaseAuthBackend(
            self.gotrue.url, service_key=self.gotrue.service_key, anon_key=self.gotrue.anon_key
        )
        self._keep(backend)
        return backend

    def better_auth_backend(self) -> BetterAuthBackend:
        # Through the fault proxy; Better-Auth checks Origin against its own URL, not the proxy's.
        backend = BetterAuthBackend(self.proxy.url, origin=self.better_auth_server.base_url)
        self._keep(backend)
        return backend

    def service(self) -> AuthService:
        """One container's AuthService: its own clients, connections and thread pool; the shared queue."""
        url = self.database_url
        connections = Connections(url, url, url)
        self._keep(connections)
        service = AuthService(
            supabase=self.supabase_backend(),
            better_auth=self.better_auth_backend(),
            connections=connections,
            repairs=self.queue,
        )
        self._keep(service)
        return service

    def reconciler(self) -> Reconciler:
        url = self.database_url
        connections = Connections(url, url, url)
        self._keep(connections)
        return Reconciler(supabase=self.supabase_backend(), connections=connections)

    # --- faults ------------------------------------------------------------------------------------------

    def faults(self, system: SystemName) -> Faults:
        """The live fault knobs of `system`: the stand-in's own for GoTrue, the proxy's for Better-Auth."""
        if system == SUPABASE:
            return self.gotrue.faults
        if system == BETTER_AUTH:
            return self.proxy.faults
        raise ValueError(f"unknown system {system!r}")

    def set_faults(self, system: SystemName, **values: Any) -> None:
        knobs = self.faults(system)
        for name, value in values.items():
            if not hasattr(knobs, name):
                raise AttributeError(f"Faults has no knob {name!r}")
            setattr(knobs, name, value)

    def clear_faults(self) -> None:
        self.gotrue.faults.reset()
        self.proxy.faults.reset()

    # --- reading the systems' own tables ------------------------------------------------------------------

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(statement.encode(), params)
            return cur.fetchall() if cur.description is not None else []

    def holders(self, emails: list[str]) -> dict[str, tuple[list[str], list[str]]]:
        """For each email: (GoTrue's ids, Better-Auth's ids) under it ignoring case, as each table holds them."""
        wanted = [e.strip().lower() for e in emails]
        rows = self.query(
            """WITH e AS (SELECT DISTINCT unnest(%s::text[]) AS email),
                    sb AS (SELECT lower(email) AS email, array_agg(id::text ORDER BY id) AS ids FROM auth.users
                           WHERE lower(email) IN (SELECT email FROM e) GROUP BY 1),
                    ba AS (SELECT lower(email) AS email, array_agg(id ORDER BY id) AS ids FROM "user"
                           WHERE lower(email) IN (SELECT email FROM e) GROUP BY 1)
               SELECT e.email, coalesce(sb.ids, '{}'), coalesce(ba.ids, '{}')
               FROM e LEFT JOIN sb USING (email) LEFT JOIN ba USING (email)""",
            wanted,
        )
        return {str(r[0]): (list(r[1]), list(r[2])) for r in rows}

    # --- teardown ----------------------------------------------------------------------------------------

    def _keep(self, closeable: Any) -> None:
        with self._lock:
            self._closeables.append(closeable)

    def close_clients(self) -> None:
        """Close every service, backend and connection handed out (the servers stay up)."""
        with self._lock:
            closeables, self._closeables = self._closeables, []
        for item in reversed(closeables):
            # Teardown must reach the database drop whatever a client says.
            with contextlib.suppress(Exception):
                item.close()


@contextmanager
def auth_stack(server_url: str | None = None, *, prefix: str = "bench_auth", seed: int = 1) -> Iterator[AuthStack]:
    """Create and prepare a database on `server_url`, start both auth systems on it, yield the stack;
    stop everything and DROP the database afterwards, even after a failure.

    `seed` seeds both fault draws (the stand-in's and the proxy's), so a fault run is reproducible.
    """
    server = server_url or default_server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = database_url_for(server, name)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        prepare_migration_database(url)
        with ExitStack() as started:
            better_auth = started.enter_context(BetterAuthServer(url, migrate=False))
            gotrue = started.enter_context(GoTrueStandIn(url, create_schema=False, seed=seed))
            proxy = started.enter_context(FaultProxy(better_auth.base_url, seed=seed + 1))
            stack = AuthStack(url, gotrue, better_auth, proxy)
            try:
                yield stack
            finally:
                stack.clear_faults()
                stack.close_clients()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--database-url, --json and --out, as every bench here takes them."""
    parser.add_argument(
        "--database-url",
        default=default_server_url(),
        help="the Postgres server (BENCH_DATABASE_URL); the bench creates and drops its own database there",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")


def emit(result: dict[str, Any], args: argparse.Namespace, table: Callable[[dict[str, Any]], str]) -> None:
    """Write the JSON to --out when asked, then print the JSON (--json) or the table."""
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result) if args.json else table(result), flush=True)
