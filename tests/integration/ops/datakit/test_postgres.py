"""A local run uses the Postgres that answers at its URL, or starts an embedded one, and stops only its own."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from auth_migration_ops.datakit.postgres import (
    LocalPostgres,
    PostgresUnavailable,
    create_database_if_missing,
    ensure_postgres,
)
from tests.integration.plugins.postgres import ADMIN_URL, database_url, drop_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port where something accepts TCP connections but never speaks Postgres."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_uses_the_server_that_answers_and_never_stops_it() -> None:
    url = database_url("whatever_db")

    with ensure_postgres(url) as pg:
        assert pg.embedded is False
        assert pg.url == url

    with psycopg.connect(ADMIN_URL) as conn:  # still up
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_starts_embedded_postgres_when_nothing_listens(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/local_app"

    pg = ensure_postgres(url, data_dir=tmp_path / "pg")
    try:
        assert pg.embedded is True
        assert pg.data_dir == (tmp_path / "pg").resolve()
        assert create_database_if_missing(pg.url) is True
        assert create_database_if_missing(pg.url) is False
        with psycopg.connect(pg.url) as conn:
            assert conn.info.dbname == "local_app"
            assert conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone() == (18,)
    finally:
        pg.stop()

    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.url, connect_timeout=2)
    pg.stop()  # a second stop is harmless


def test_a_second_handle_on_a_running_embedded_server_does_not_stop_it(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/app"

    with ensure_postgres(url, data_dir=tmp_path / "pg") as first:
        second = ensure_postgres(url, data_dir=tmp_path / "pg")
        second.stop()
        with psycopg.connect(first.url.replace("/app?", "/postgres?")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_create_database_if_missing_on_the_real_server() -> None:
    url = database_url(f"localdb_{free_port()}")
    try:
        assert create_database_if_missing(url) is True
        assert create_database_if_missing(url) is False
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        drop_database(psycopg.conninfo.conninfo_to_dict(url)["dbname"])  # type: ignore[arg-type]


def test_something_that_is_not_postgres_gives_a_one_line_error(silent_listener: int) -> None:
    with pytest.raises(PostgresUnavailable) as excinfo:
        ensure_postgres(f"postgresql://postgres@127.0.0.1:{silent_listener}/app", timeout_s=1)

    assert "\n" not in str(excinfo.value)
    assert isinstance(excinfo.value, RuntimeError)


def test_local_postgres_repr_names_the_url_and_kind() -> None:
    assert (
        repr(LocalPostgres("postgresql://h/db", embedded=False))
        == "LocalPostgres(url='postgresql://h/db', embedded=False)"
    )
