"""What the Signup, Login and Admin functions' cold start imports: only what a request needs (bench.cold_start
times it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared"
ADMIN_FUNCTION = ROOT / "functions" / "admin"

# Each is imported by a request path that Signup and Login never take, or only when that path is taken.
NOT_AT_IMPORT = (
    "auth_migration.engine",  # the bulk migration (MigrateBatch, MigrationControl)
    "auth_migration.queue",  # the engine's SQS sender
    "auth_migration.dual_write.reconcile",  # the Reconcile function
    "auth_migration.admin",  # the admin API
    "boto3",  # SqsRepairQueue imports it on its first send
    "sentry_sdk",  # init_sentry imports it only with a DSN
    "aws_lambda_powertools.event_handler.openapi.models",  # the OpenAPI document, never built by a request
    "jwt",  # PyJWT (and cryptography): the SessionExchange function's token checks
    "cryptography",
    "auth_migration.sessions.exchange",
)


def _loaded_in_fresh_interpreter(
    paths: Sequence[Path], module: str, candidates: Sequence[str], env: dict[str, str]
) -> list[str]:
    """Which of candidates a new interpreter has loaded after importing module (this session has them all)."""
    code = (
        f"import json, sys; sys.path[:0] = {[str(p) for p in paths]!r}; import {module}; "
        f"print(json.dumps(sorted(m for m in {list(candidates)!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("module", ["auth_migration.dual_write.runtime", "auth_migration.dual_write.api"])
def test_the_auth_api_imports_nothing_its_requests_do_not_need(module: str) -> None:
    assert _loaded_in_fresh_interpreter([LAYER], module, NOT_AT_IMPORT, {"PATH": ""}) == []


# The Admin function needs the admin package, boto3 (its SSM client is made at init) and the engine (a
# migration's report, GET /admin/migrations/{id}, with the queue that auth_migration.engine imports); the rest
# of NOT_AT_IMPORT it never needs at import.
ADMIN_NOT_AT_IMPORT = tuple(
    m
    for m in NOT_AT_IMPORT
    if m not in ("auth_migration.admin", "boto3", "auth_migration.engine", "auth_migration.queue")
)


def test_the_admin_function_imports_nothing_its_requests_do_not_need() -> None:
    # The handler module itself (template.yaml: functions/admin/, app.lambda_handler), as Lambda imports it:
    # it loads its settings and builds its resolver at import. Offline: no SSM prefix, no DSN, fake credentials.
    env = {
        "PATH": "",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "cold-start",
        "AWS_SECRET_ACCESS_KEY": "cold-start",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PARAMETER_PREFIX": "",
        "SENTRY_DSN": "",
    }

    assert _loaded_in_fresh_interpreter([ADMIN_FUNCTION, LAYER], "app", ADMIN_NOT_AT_IMPORT, env) == []
