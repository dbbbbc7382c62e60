"""Throw-away Postgres databases for integration tests: each test gets its own, dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

#: The server tests run against; CI and the dev machine run PostgreSQL 15 here with trust auth.
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_database(prefix: str = "t") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def make_database() -> Iterator[Callable[[], str]]:
    """Factory: each call creates an empty database and returns its URL; all are dropped after the test."""
    names: list[str] = []

    def _make() -> str:
        name = create_database()
        names.append(name)
        return database_url(name)

    yield _make
    for name in names:
        drop_database(name)


@pytest.fixture
def database(make_database: Callable[[], str]) -> str:
    """The URL of one empty database, dropped after the test."""
    return make_database()
