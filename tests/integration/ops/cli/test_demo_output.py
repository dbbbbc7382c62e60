"""Local runs keep the functions' telemetry out of the operator's terminal (issue 11): `auth-migrate demo`
and `migrate start|resume --local` show the progress lines and the report, nothing else; the functions'
EMF blobs, JSON log lines and Python warnings go to `.local/runs/<migration id>/telemetry.jsonl`, which the
report names."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auth_migration_ops.datakit.schemas import prepare_migration_database
from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from tests.reference_time import live_reference_time

pytestmark = pytest.mark.slow

TELEMETRY_LINE = re.compile(r"^  telemetry     (\S+) \(([\d,]+) metric blobs?, ([\d,]+) log lines?\)$", re.MULTILINE)
MIGRATED_LINE = re.compile(r"^    migrated\s+([\d,]+)$", re.MULTILINE)
# What may reach the terminal besides the report: the demo's two notes and the plain progress line.
NARRATION = (
    re.compile(r"^generated [\d,]+ Supabase users in [\d.]+ s$"),
    re.compile(r"^migration mig_\w+: \d+ batches enqueued$"),
    re.compile(r"^\d+/\d+ batches  [\d,]+ users  [\d,]+ errors  [\d,]+ users/s  [\d.]+s$"),
)
BCRYPT = re.compile(r"\$2[aby]\$\d{2}\$")


def run_cli(*args: str, cwd: Path, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a working directory of the test's own, so its run directory lands there."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    if database_url:
        env.update(OLD_DATABASE_URL=database_url, NEW_DATABASE_URL=database_url, BETTER_AUTH_DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "auth_migration_ops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def assert_terminal_is_clean(result: subprocess.CompletedProcess[str]) -> None:
    """stderr: only the narration and progress lines; stdout: only the text report."""
    both = result.stdout + result.stderr
    for needle in ("UserWarning", "No application metrics", "Traceback", '"_aws"', '"level"'):
        assert needle not in both, both
    assert not [line for line in both.splitlines() if line.lstrip().startswith("{")], both
    for line in result.stderr.splitlines():
        assert any(pattern.match(line) for pattern in NARRATION), f"unexpected on stderr: {line!r}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    assert lines[0].startswith("migration mig_"), result.stdout
    assert all(line.startswith("  ") for line in lines[1:]), result.stdout


def read_telemetry(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert not BCRYPT.search(text), "a password hash reached the telemetry file"
    objects = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(obj, dict) for obj in objects)
    return objects


def emf_sum(objects: list[dict[str, Any]], metric: str) -> float:
    total = 0.0
    for obj in objects:
        if "_aws" not in obj:
            continue
        names = {m["Name"] for d in obj["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        if metric in names:
            value = obj[metric]
            total += sum(value) if isinstance(value, list) else value
    return total


def check_file(
    path: Path, *, migrated: int, blobs: int, log_lines: int, runs: Path, migration_id: str
) -> list[dict[str, Any]]:
    assert path.is_file()
    assert path.parent.parent == runs.resolve()
    assert path.parent.name.startswith(migration_id)
    objects = read_telemetry(path)
    emf = [obj for obj in objects if "_aws" in obj]
    assert len(emf) == blobs
    assert len(objects) - len(emf) == log_lines
    assert emf_sum(objects, "UsersMigrated") == migrated
    return objects


def test_the_demo_shows_the_bar_and_the_report_and_files_the_telemetry(database: str, tmp_path: Path) -> None:
    result = run_cli("demo", "--users", "400", "--batch-size", "20", "--database-url", database, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert_terminal_is_clean(result)
    named = TELEMETRY_LINE.search(result.stdout)
    assert named, result.stdout
    migrated = MIGRATED_LINE.search(result.stdout)
    assert migrated, result.stdout
    migration_id = result.stdout.split()[1]
    path = tmp_path / named.group(1)
    objects = check_file(
        path,
        migrated=int(migrated.group(1).replace(",", "")),
        blobs=int(named.group(2).replace(",", "")),
        log_lines=int(named.group(3).replace(",", "")),
        runs=tmp_path / ".local" / "runs",
        migration_id=migration_id,
    )
    assert path.parent.name == migration_id
    assert int(migrated.group(1).replace(",", "")) > 0
    # The functions' own JSON log lines and the warning Powertools gives for a flush with no metrics.
    assert any(obj.get("message") == "batch processed" and obj.get("migration_id") == migration_id for obj in objects)
    assert any(obj.get("level") == "WARNING" and obj.get("warning") == "UserWarning" for obj in objects)
    # No user's password hash from the source reached the file (the generator's hashes are real bcrypt).
    text = path.read_text(encoding="utf-8")
    with psycopg.connect(database) as conn:
        hashes = [row[0] for row in conn.execute("SELECT encrypted_password FROM auth.users LIMIT 20")]
    assert all(h is None or h not in text for h in hashes)


def test_migrate_start_and_resume_local_file_their_telemetry_and_say_where(database: str, tmp_path: Path) -> None:
    prepare_migration_database(database)
    generate_supabase_users(database, 300, seed=5, bcrypt_rounds=4, reference_time=live_reference_time())

    started = run_cli("migrate", "start", "--local", "--batch-size", "50", cwd=tmp_path, database_url=database)

    assert started.returncode == 0, started.stderr
    assert_terminal_is_clean(started)
    named = TELEMETRY_LINE.search(started.stdout)
    migrated = MIGRATED_LINE.search(started.stdout)
    assert named and migrated, started.stdout
    migration_id = started.stdout.split()[1]
    runs = tmp_path / ".local" / "runs"
    check_file(
        tmp_path / named.group(1),
        migrated=int(migrated.group(1).replace(",", "")),
        blobs=int(named.group(2).replace(",", "")),
        log_lines=int(named.group(3).replace(",", "")),
        runs=runs,
        migration_id=migration_id,
    )

    # --json: the report on stdout, the file in `telemetry_file`; a second run of the migration gets a
    # directory of its own next to the first.
    resumed = run_cli("migrate", "resume", migration_id, "--local", "--json", cwd=tmp_path, database_url=database)

    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr == ""
    report = json.loads(resumed.stdout)
    assert report["migration_id"] == migration_id
    path = tmp_path / report["telemetry_file"]
    assert path.parent.name == f"{migration_id}-2"
    objects = check_file(
        path,
        migrated=0,  # nothing left to migrate: the resume only looks
        blobs=report["telemetry_metric_blobs"],
        log_lines=report["telemetry_log_lines"],
        runs=runs,
        migration_id=migration_id,
    )
    assert report["telemetry_log_lines"] == len(objects) - report["telemetry_metric_blobs"]
