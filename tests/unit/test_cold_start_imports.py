"""What the Signup and Login functions' cold start imports: only what a request needs (bench.cold_start times it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LAYER = Path(__file__).resolve().parents[2] / "layers" / "shared"

# Each is imported by a request path that Signup and Login never take, or only when that path is taken.
NOT_AT_IMPORT = (
    "auth_migration.engine",  # the bulk migration (MigrateBatch, MigrationControl)
    "auth_migration.queue",  # the engine's SQS sender
    "auth_migration.dual_write.reconcile",  # the Reconcile function
    "auth_migration.admin",  # the admin API
    "boto3",  # SqsRepairQueue imports it on its first send
    "sentry_sdk",  # init_sentry imports it only with a DSN
    "aws_lambda_powertools.event_handler.openapi.models",  # the OpenAPI document, never built by a request
)


@pytest.mark.parametrize("module", ["auth_migration.dual_write.runtime", "auth_migration.dual_write.api"])
def test_the_auth_api_imports_nothing_its_requests_do_not_need(module: str) -> None:
    # A fresh interpreter: this test session has imported everything already.
    code = (
        f"import json, sys; sys.path.insert(0, {str(LAYER)!r}); import {module}; "
        f"print(json.dumps(sorted(m for m in {list(NOT_AT_IMPORT)!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env={"PATH": ""}
    )

    assert json.loads(done.stdout) == []
