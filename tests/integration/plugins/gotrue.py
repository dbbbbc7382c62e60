"""Fixtures for the GoTrue stand-in (ops/auth_migration_ops/standins/gotrue.py) over a real `auth` schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from auth_migration_ops.standins.gotrue import GoTrueStandIn


@pytest.fixture
def start_gotrue() -> Iterator[Callable[..., GoTrueStandIn]]:
    """Factory: `start_gotrue(database_url, **options)` -> a started stand-in, stopped after the test.

    Options are GoTrueStandIn's (jwt_secret, service_key, autoconfirm, password_min_length, seed...).
    """
    standins: list[GoTrueStandIn] = []

    def _start(database_url: str, **options: Any) -> GoTrueStandIn:
        standin = GoTrueStandIn(database_url, **options)
        standins.append(standin)
        return standin.start()

    yield _start
    for standin in standins:
        standin.stop()


@pytest.fixture
def gotrue(supabase_db: str, start_gotrue: Callable[..., GoTrueStandIn]) -> GoTrueStandIn:
    """A started stand-in over a fresh database with an empty `auth` schema (seeded faults)."""
    return start_gotrue(supabase_db, seed=1)
