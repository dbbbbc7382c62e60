"""Fixtures for the real Better-Auth server (Node, ops/better_auth_server) on a test database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from auth_migration_ops.standins.better_auth import BetterAuthServer, ensure_installed


@pytest.fixture(scope="session")
def better_auth_installed() -> None:
    """The Node project's dependencies are installed (`npm ci` once, skipped when up to date)."""
    ensure_installed()


@pytest.fixture
def start_better_auth(better_auth_installed: None) -> Iterator[Callable[..., BetterAuthServer]]:
    """Factory: `start_better_auth(database_url, migrate=True, rate_limit=False)` -> a started server,
    stopped after the test.

    With migrate=True Better-Auth creates its own tables on start; pass False for a database whose
    tables already exist (for example made from the bundled SQL schema).
    """
    servers: list[BetterAuthServer] = []

    def _start(database_url: str, *, migrate: bool = True, rate_limit: bool = False) -> BetterAuthServer:
        server = BetterAuthServer(database_url, migrate=migrate, rate_limit=rate_limit)
        servers.append(server)
        return server.start()

    yield _start
    for server in servers:
        server.stop()
