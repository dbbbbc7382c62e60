"""`auth-migrate` as an operator meets it: bad input gives one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.integration.plugins.engine import prepare_migration_db

REPO = Path(__file__).resolve().parents[4]


def cli(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    if database_url:
        env.update(OLD_DATABASE_URL=database_url, NEW_DATABASE_URL=database_url, BETTER_AUTH_DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "auth_migration_ops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert needle in result.stderr
    assert result.stdout == ""


def test_unknown_migration_id_is_one_line(database: str) -> None:
    prepare_migration_db(database)
    result = cli("migrate", "status", "mig_does_not_exist", database_url=database)
    assert_one_line_error(result, "no migration with id 'mig_does_not_exist'")
    assert result.returncode == 1


@pytest.mark.parametrize("size", ["0", "10001", "-5", "ten"])
def test_bad_batch_size_is_a_usage_error(size: str) -> None:
    result = cli("migrate", "start", "--batch-size", size)
    assert_one_line_error(result, "batch size")
    assert result.returncode == 2


def test_unreachable_database_is_one_line() -> None:
    result = cli("migrate", "status", "mig_x", database_url="postgresql://postgres@127.0.0.1:1/nowhere")
    assert_one_line_error(result, "cannot connect to 127.0.0.1:1/nowhere")


def test_missing_schema_says_what_to_run(database: str) -> None:
    result = cli("migrate", "status", "mig_x", database_url=database)
    assert_one_line_error(result, "auth-migrate db upgrade")


def test_db_upgrade_is_idempotent(database: str) -> None:
    first = cli("db", "upgrade", database_url=database)
    second = cli("db", "upgrade", database_url=database)
    assert first.returncode == second.returncode == 0
    assert "0001_migration_state" in first.stdout
    assert "up to date" in second.stdout


def test_invoke_runs_a_function_from_the_template_with_a_sample_event(database: str) -> None:
    prepare_migration_db(database)
    result = cli("invoke", "MigrationControl", "-e", "events/migration_control/status.json", database_url=database)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["ok"] is False
    assert reply["error"]["type"] == "not_found"


def test_invoke_with_an_unreadable_event_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = cli("invoke", "MigrationControl", "-e", str(bad))
    assert_one_line_error(result, "cannot read event")
    assert result.returncode == 2


def test_a_state_schema_older_than_the_code_says_what_to_run(database: str) -> None:
    assert cli("db", "upgrade", database_url=database).returncode == 0
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
    result = cli("migrate", "status", "mig_x", database_url=database)
    assert_one_line_error(result, "auth-migrate db upgrade")
    assert "schema is at version" in result.stderr


def test_bench_runs_in_a_process_of_its_own_and_keeps_its_exit_code(database: str) -> None:
    result = cli("bench", "--users", "many", database_url=database)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--users" in result.stderr
