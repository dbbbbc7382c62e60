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


# What Powertools' Tracer would import at init only to patch it (auto_patch); observability patches each when
# something imports it instead.
PATCHED_WHEN_IMPORTED = ("botocore.client", "httpx", "psycopg", "sqlite3")
_TRACER_PROBE = """
import json, sys
sys.path[:0] = [{layer!r}]
if {libraries_first}:
    import boto3, httpx, psycopg, sqlite3
import auth_migration.observability as observability
loaded = sorted(m for m in {candidates!r} if m in sys.modules)
import boto3, botocore.client, httpx, psycopg, sqlite3
boto3.client("sqs")
print(json.dumps({{
    "tracing": not observability.tracer.disabled,
    "loaded_with_observability": loaded,
    "patched": {{
        "botocore": getattr(botocore.client, "_xray_enabled", False),
        "httpx": httpx.Client.__module__ == "aws_xray_sdk.ext.httpx.patch",
        "psycopg": type(psycopg.connect).__name__ == "FunctionWrapper",
        "sqlite3": type(sqlite3.connect).__name__ == "FunctionWrapper",
    }},
}}))
"""


@pytest.mark.parametrize("libraries_first", [False, True], ids=["observability first", "libraries first"])
def test_the_tracer_patches_each_library_when_it_is_imported_not_before(libraries_first: bool) -> None:
    env = {
        "PATH": "",
        "LAMBDA_TASK_ROOT": str(LAYER),  # in Lambda: Tracer is active and patches
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "cold-start",
        "AWS_SECRET_ACCESS_KEY": "cold-start",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    code = _TRACER_PROBE.format(layer=str(LAYER), libraries_first=libraries_first, candidates=PATCHED_WHEN_IMPORTED)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env)
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["tracing"] is True
    # X-Ray traces what patch_all would: every library, once imported, whichever came first.
    assert seen["patched"] == {"botocore": True, "httpx": True, "psycopg": True, "sqlite3": True}
    if not libraries_first:
        assert seen["loaded_with_observability"] == []


# Event Handler's validation machinery: the auth routes validate their bodies themselves (dual_write/api.py).
VALIDATION_MACHINERY = (
    "aws_lambda_powertools.event_handler.openapi.params",
    "aws_lambda_powertools.event_handler.openapi.dependant",
    "aws_lambda_powertools.event_handler.middlewares.openapi_validation",
)


_REFUSED_LOGIN_PROBE = """
import json, sys
sys.path[:0] = [{layer!r}]
from auth_migration.dual_write.api import build_resolver, handle_api_event
from auth_migration_ops.local.invoke import LocalLambdaContext
app = build_resolver(lambda: None, lambda: None)
event = {{
    "resource": "/auth/login", "path": "/auth/login", "httpMethod": "POST",
    "headers": {{"content-type": "application/json"}}, "requestContext": {{"identity": {{}}}},
    "body": json.dumps({{"email": "not-an-email", "password": ""}}), "isBase64Encoded": False,
}}
reply = handle_api_event(event, LocalLambdaContext(function_name="login", timeout_s=30, memory_limit_in_mb=512), app)
print(json.dumps([reply["statusCode"], sorted(m for m in {candidates!r} if m in sys.modules)]))
"""


def test_the_auth_api_never_imports_event_handlers_validation_not_even_for_a_request() -> None:
    code = _REFUSED_LOGIN_PROBE.format(layer=str(LAYER), candidates=VALIDATION_MACHINERY)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env={"PATH": ""}
    )
    status, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == 400  # refused by the route's own body validation
    assert loaded == []
