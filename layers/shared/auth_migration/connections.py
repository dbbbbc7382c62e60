"""The three databases a migration touches, connected lazily and shared when they are the same one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

import psycopg

from auth_migration.store import connect

T = TypeVar("T")


class Connections:
    """State (NEW_DATABASE_URL), source (OLD_DATABASE_URL) and target (BETTER_AUTH_DATABASE_URL).

    Where two URLs name the same database, one connection serves both, which is what lets the
    target rows and the tracking row commit in one transaction. Connections are autocommit: every
    unit of work opens an explicit `conn.transaction()`. Kept across warm Lambda invocations.
    """

    def __init__(self, state_url: str, source_url: str, target_url: str) -> None:
        self.urls = {"state": state_url, "source": source_url, "target": target_url}
        self._open: dict[str, psycopg.Connection] = {}
        self._side: dict[str, psycopg.Connection] = {}
        #: True when target and state are one database: per-user atomicity by a single transaction.
        self.shared_target = _same(state_url, target_url)
        #: True when source and state are one database: a batch's read can tell who is already migrated.
        self.shared_source = _same(state_url, source_url)

    def _get(self, role: str) -> psycopg.Connection:
        mine = self._open.get(role)
        if mine is not None and not mine.closed:
            return mine  # the hot path: several look-ups per batch, no URL parsing
        url = self.urls[role]
        for other, conn in self._open.items():
            if _same(self.urls[other], url) and not conn.closed:
                self._open[role] = conn
                return conn
        conn = connect(url, autocommit=True, application_name=f"auth-migration-{role}")
        self._open[role] = conn
        return conn

    @property
    def state(self) -> psycopg.Connection:
        return self._get("state")

    @property
    def source(self) -> psycopg.Connection:
        return self._get("source")

    @property
    def target(self) -> psycopg.Connection:
        return self._get("target")

    def open_extra(self, role: str) -> psycopg.Connection:
        """A connection of its own to that role's database (autocommit), for a statement run side by side
        with the shared connection's work. The caller closes it."""
        return connect(self.urls[role], autocommit=True, application_name=f"auth-migration-{role}-extra")

    def side(self, role: str, purpose: str = "side") -> psycopg.Connection:
        """A second connection to that role's database (autocommit), kept like the shared ones, one per
        `purpose`: for statements that must commit while the shared connection is inside a transaction (the
        shared request cap of the supabase target), or that run in another thread (the batch prefetch).
        Closed by reset()/close()."""
        key = f"{role}/{purpose}"
        mine = self._side.get(key)
        if mine is None or mine.closed:
            mine = self._side[key] = connect(
                self.urls[role], autocommit=True, application_name=f"auth-migration-{role}-{purpose}"
            )
        return mine

    def transact(self, role: str, fn: Callable[[psycopg.Connection], T]) -> T:
        """Run `fn` in one transaction on `role`'s connection, reconnecting once after a dropped connection
        (a warm container's connection may have been closed by the server or a proxy while frozen)."""
        for attempt in (1, 2):
            conn = self._get(role)
            try:
                with conn.transaction():
                    return fn(conn)
            except psycopg.OperationalError:
                self.reset()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def reset(self) -> None:
        """Close everything (after a connection-level error); the next use reconnects."""
        for conn in {id(c): c for c in [*self._open.values(), *self._side.values()]}.values():
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self._open.clear()
        self._side.clear()

    close = reset


def _same(a: str, b: str) -> bool:
    try:
        da, db = psycopg.conninfo.conninfo_to_dict(a), psycopg.conninfo.conninfo_to_dict(b)
    except psycopg.ProgrammingError:
        return a == b
    keys = ("host", "port", "dbname", "user")
    defaults = {"port": "5432"}
    return all(str(da.get(k, defaults.get(k, ""))) == str(db.get(k, defaults.get(k, ""))) for k in keys)
