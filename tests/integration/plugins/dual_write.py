"""Fixtures for the signup/login service: one database holding GoTrue's `auth` schema, Better-Auth's tables
and our state; the REAL Better-Auth server behind a fault proxy; the GoTrue stand-in with its own faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from auth_migration.backends import BetterAuthBackend, SupabaseAuthBackend
from auth_migration.connections import Connections
from auth_migration.dual_write.reconcile import Reconciler
from auth_migration.dual_write.service import AuthService
from auth_migration.flags import Flags, MigrationMode
from auth_migration_ops.datakit.schemas import prepare_migration_database
from auth_migration_ops.standins.better_auth import BetterAuthServer, free_port
from auth_migration_ops.standins.fault_proxy import FaultProxy
from auth_migration_ops.standins.gotrue import GoTrueStandIn


class ListRepairQueue:
    """Reconcile's queue in memory: the messages a real SQS queue would carry."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: Mapping[str, Any]) -> None:
        self.messages.append(dict(message))


@dataclass
class DualWriteStack:
    database_url: str
    gotrue: GoTrueStandIn
    better_auth_server: BetterAuthServer
    proxy: FaultProxy
    queue: ListRepairQueue
    services: list[AuthService] = field(default_factory=list)

    def supabase_backend(self, *, down: bool = False) -> SupabaseAuthBackend:
        url = f"http://127.0.0.1:{free_port()}" if down else self.gotrue.url
        return SupabaseAuthBackend(url, service_key=self.gotrue.service_key, anon_key=self.gotrue.anon_key)

    def better_auth_backend(self, *, down: bool = False) -> BetterAuthBackend:
        # Through the fault proxy; Better-Auth checks Origin against its own URL, not the proxy's.
        url = f"http://127.0.0.1:{free_port()}" if down else self.proxy.url
        return BetterAuthBackend(url, origin=self.better_auth_server.base_url)

    def service(self, *, supabase_down: bool = False, better_auth_down: bool = False) -> AuthService:
        """A service as one Lambda container builds it. `*_down`: that system's URL refuses connections."""
        url = self.database_url
        service = AuthService(
            supabase=self.supabase_backend(down=supabase_down),
            better_auth=self.better_auth_backend(down=better_auth_down),
            connections=Connections(url, url, url),
            repairs=self.queue,
        )
        self.services.append(service)
        return service

    def reconciler(self) -> Reconciler:
        url = self.database_url
        return Reconciler(supabase=self.supabase_backend(), connections=Connections(url, url, url))

    def drain(self) -> list[str]:
        """Run Reconcile over every queued message, as the SQS trigger would; returns the outcomes."""
        reconciler = self.reconciler()
        outcomes = []
        while self.queue.messages:
            message = self.queue.messages.pop(0)
            outcomes.append(reconciler.repair(reconciler.gap_id_from(message)).outcome)
        reconciler.conns.close()
        return outcomes

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description is not None else []

    def holders(self, email: str) -> tuple[str | None, str | None]:
        """(GoTrue's id, Better-Auth's id) for `email`, as each system's own table has it."""
        sb = self.query("SELECT id::text FROM auth.users WHERE email = %s", email.lower())
        ba = self.query('SELECT id FROM "user" WHERE email = %s', email.lower())
        return (sb[0][0] if sb else None, ba[0][0] if ba else None)


def flags_for(
    mode: MigrationMode | str, *, better_auth_primary: bool = False, timeout_ms: int = 1000, **extra: Any
) -> Flags:
    return Flags(
        migration_mode=MigrationMode(mode),
        use_better_auth=better_auth_primary,
        fallback_timeout_ms=timeout_ms,
        **extra,
    )


@pytest.fixture
def dual_write_stack(
    make_database: Callable[[], str],
    start_better_auth: Callable[..., BetterAuthServer],
    start_gotrue: Callable[..., GoTrueStandIn],
) -> Iterator[DualWriteStack]:
    url = make_database()
    prepare_migration_database(url)
    server = start_better_auth(url, migrate=False)
    standin = start_gotrue(url, seed=1)
    with FaultProxy(server.base_url, seed=2) as proxy:
        stack = DualWriteStack(url, standin, server, proxy, ListRepairQueue())
        yield stack
        for service in stack.services:
            service.close()
            service.supabase.close()
            service.better_auth.close()
            service.conns.close()
