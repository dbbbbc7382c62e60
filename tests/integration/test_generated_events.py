"""Every trigger's event exactly as `sam local generate-event` makes it (events/*/generated_*.json), run
through its function as template.yaml defines it (in-process, moto SSM, the real state database): each
has a clear outcome, never a crash. The files are checked against SAM CLI itself when it is installed.

MigrationControl has no such event: it is invoked directly (the CLI, a person), never by a trigger.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auth_migration.engine.plan import StartRequest, start_migration
from auth_migration.flags import Flags
from auth_migration_ops.datakit.supabase_data import generate_supabase_users
from auth_migration_ops.local.aws import LocalAws, put_parameters
from auth_migration_ops.local.invoke import invoke_function, load_event
from auth_migration_ops.standins.better_auth import free_port
from tests.integration.plugins.engine import InlineEngine
from tests.reference_time import REFERENCE_TIME

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
SAM = REPO / ".venv-sam" / "bin" / "sam"
#: Each generated file and the `sam local generate-event` arguments that print it.
GENERATORS = {
    "generated_apigateway_aws_proxy.json": ["apigateway", "aws-proxy"],
    "generated_apigateway_http_api_proxy.json": ["apigateway", "http-api-proxy"],
    "generated_sqs_receive_message.json": ["sqs", "receive-message"],
    "generated_cloudwatch_scheduled_event.json": ["cloudwatch", "scheduled-event"],
}
GENERATED = sorted(EVENTS.glob("*/generated_*.json"))
SQS_MESSAGE_ID = "19dd0b57-b21e-4ac1-bd88-01bbb068cb78"
API_FUNCTIONS = {"signup": "Signup", "login": "Login", "admin": "Admin"}


def _id(path: Path) -> str:
    return str(path.relative_to(EVENTS))


def test_every_trigger_has_its_generated_event() -> None:
    present = {(path.parent.name, path.name) for path in GENERATED}

    assert present == {
        *((folder, "generated_apigateway_aws_proxy.json") for folder in API_FUNCTIONS),
        *((folder, "generated_apigateway_http_api_proxy.json") for folder in API_FUNCTIONS),
        ("migrate_batch", "generated_sqs_receive_message.json"),
        ("reconcile", "generated_sqs_receive_message.json"),
        ("reconcile", "generated_cloudwatch_scheduled_event.json"),
        ("auto_rollback", "generated_cloudwatch_scheduled_event.json"),
    }


@pytest.mark.skipif(not SAM.is_file() and shutil.which("sam") is None, reason="SAM CLI is not installed")
@pytest.mark.parametrize("path", GENERATED, ids=_id)
def test_each_generated_event_is_what_sam_cli_prints(path: Path) -> None:
    sam = str(SAM) if SAM.is_file() else "sam"
    printed = subprocess.run(
        [sam, "local", "generate-event", *GENERATORS[path.name]],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    ).stdout

    assert load_event(path) == json.loads(printed)


class Stack:
    """The functions' environment: moto SSM with the default flags, one state database, auth systems
    that are not there (nothing these events do may reach them)."""

    def __init__(self, aws: LocalAws, db: str) -> None:
        self.aws, self.db = aws, db
        self.prefix = f"/auth-migration-{uuid.uuid4().hex[:8]}/dev/"
        put_parameters(aws.client("ssm"), self.prefix, Flags.defaults().as_parameters())
        nowhere = f"http://127.0.0.1:{free_port()}"
        self.env = {
            **aws.env(),
            "PARAMETER_PREFIX": self.prefix,
            "NEW_DATABASE_URL": db,
            "OLD_DATABASE_URL": db,
            "BETTER_AUTH_DATABASE_URL": db,
            "SUPABASE_URL": nowhere,
            "SUPABASE_SERVICE_KEY": "unused",
            "BETTER_AUTH_URL": nowhere,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        # The prefix as a resource value: one warm container per test's environment.
        return invoke_function(name, event, env_overrides=self.env, resource_values={"Prefix": self.prefix})


@pytest.fixture
def stack(local_aws: LocalAws, migration_db: str) -> Stack:
    return Stack(local_aws, migration_db)


@pytest.mark.parametrize("folder", list(API_FUNCTIONS))
def test_api_functions_answer_an_http_api_event_with_a_400_naming_the_payload_version(
    stack: Stack, folder: str
) -> None:
    # Through the whole handler: Logger's correlation id path, Tracer and Metrics see the v2 event too.
    reply = stack.invoke(
        API_FUNCTIONS[folder], load_event(EVENTS / folder / "generated_apigateway_http_api_proxy.json")
    )

    assert reply["statusCode"] == 400, reply
    body = json.loads(reply["body"])
    assert body["error"] == "unsupported_event"
    assert "payload format 2.0" in body["message"]


@pytest.mark.parametrize("folder", list(API_FUNCTIONS))
def test_api_functions_answer_the_generated_rest_event_with_a_4xx(stack: Stack, folder: str) -> None:
    reply = stack.invoke(API_FUNCTIONS[folder], load_event(EVENTS / folder / "generated_apigateway_aws_proxy.json"))

    assert reply["statusCode"] == 415, reply
    assert json.loads(reply["body"])["error"] == "unsupported_media_type"


@pytest.mark.parametrize(("folder", "function"), [("migrate_batch", "MigrateBatch"), ("reconcile", "Reconcile")])
def test_sqs_functions_report_a_foreign_message_as_a_batch_item_failure(
    stack: Stack, folder: str, function: str
) -> None:
    reply = stack.invoke(function, load_event(EVENTS / folder / "generated_sqs_receive_message.json"))

    assert reply == {"batchItemFailures": [{"itemIdentifier": SQS_MESSAGE_ID}]}


def test_reconcile_reports_only_the_foreign_record_of_a_mixed_batch(stack: Stack) -> None:
    event = load_event(EVENTS / "reconcile" / "generated_sqs_receive_message.json")
    (foreign,) = event["Records"]
    # A gap nobody has: already closed, so that record succeeds.
    event["Records"] = [foreign, {**foreign, "messageId": "m-gap", "body": json.dumps({"gap_id": 987654})}]

    assert stack.invoke("Reconcile", event) == {"batchItemFailures": [{"itemIdentifier": SQS_MESSAGE_ID}]}


def test_migrate_batch_reports_only_the_foreign_record_of_a_mixed_batch(stack: Stack) -> None:
    generate_supabase_users(stack.db, 20, seed=3, edge_cases=False, bcrypt_rounds=4, reference_time=REFERENCE_TIME)
    engine = InlineEngine(stack.db)
    try:
        started = start_migration(StartRequest(batch_size=10), engine.context())
    finally:
        engine.close()
    first = engine.queue.messages[0]
    event = load_event(EVENTS / "migrate_batch" / "generated_sqs_receive_message.json")
    (foreign,) = event["Records"]
    event["Records"] = [foreign, {**foreign, "messageId": "m-batch", "body": json.dumps(first.to_body())}]

    assert stack.invoke("MigrateBatch", event) == {"batchItemFailures": [{"itemIdentifier": SQS_MESSAGE_ID}]}
    with psycopg.connect(stack.db) as conn:
        status = conn.execute(
            "SELECT status FROM migration_batches WHERE migration_id = %s AND batch_no = %s",
            (started.migration_id, first.batch_no),
        ).fetchone()
    assert status == ("done",)


def test_reconcile_sweeps_on_the_generated_schedule_event(stack: Stack) -> None:
    event = load_event(EVENTS / "reconcile" / "generated_cloudwatch_scheduled_event.json")

    assert stack.invoke("Reconcile", event) == {"requeued": 0, "repaired": 0}


def test_auto_rollback_runs_on_the_generated_schedule_event(stack: Stack) -> None:
    event = load_event(EVENTS / "auto_rollback" / "generated_cloudwatch_scheduled_event.json")

    reply = stack.invoke("AutoRollback", event)

    # Default flags: Better-Auth answers no one, so there is nothing to judge and nothing is written.
    assert reply["action"] not in ("failed", "rollback"), reply
