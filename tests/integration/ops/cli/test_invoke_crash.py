"""`auth-migrate invoke` tells a function that crashed from a command used wrongly: a handler that
raises is exit 1 with Lambda's error document on stderr (as `sam local invoke` shows it), never the
usage error (exit 2) that once hid it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.ops.cli.test_cli import assert_one_line_error, cli
from tests.integration.plugins.engine import prepare_migration_db


def _error_document(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """stderr: one `auth-migrate: error:` line, then the error document as JSON (what the function
    itself wrote to stderr, Powertools' warnings among them, may come before)."""
    _, marker, after = result.stderr.partition("auth-migrate: error: ")
    assert marker, result.stderr
    _, _, rest = after.partition("\n")
    document = json.loads(rest)
    assert isinstance(document, dict)
    return document


def test_a_handler_that_raises_is_a_crash_with_lambdas_error_document(database: str, tmp_path: Path) -> None:
    prepare_migration_db(database)
    neither = tmp_path / "neither.json"
    neither.write_text(json.dumps({"detail-type": "not a trigger Reconcile knows"}), encoding="utf-8")

    # Reconcile raises InvalidRequest for an event it cannot place, which the CLI's own error mapping
    # would have shown as a usage error.
    result = cli("invoke", "Reconcile", "-e", str(neither), database_url=database)

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Reconcile crashed: InvalidRequest: expected an SQS event" in result.stderr
    document = _error_document(result)
    assert document["errorType"] == "InvalidRequest"
    assert document["errorMessage"] == 'expected an SQS event or {"action": "sweep"}'
    assert isinstance(document["requestId"], str) and document["requestId"]
    frames = document["stackTrace"]
    assert isinstance(frames, list)
    assert "functions/reconcile/app.py" in "".join(frames)
    assert "reconcile_worker.py" in frames[-1]
    assert not any("auth_migration_ops" in frame for frame in frames)


def test_an_unknown_function_stays_a_usage_error() -> None:
    result = cli("invoke", "NoSuchFunction", "-e", "events/reconcile/sweep.json")

    assert_one_line_error(result, "no function 'NoSuchFunction' in the template")
    assert result.returncode == 2
