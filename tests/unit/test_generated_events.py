"""The events `sam local generate-event` makes (events/*/generated_*.json), through the code each
function runs: an API event that is not ours is a clear 4xx, never a KeyError; an SQS batch whose
records all fail is answered with every record in batchItemFailures, never BatchProcessingError.

Nothing here reaches a database or an auth system: every refusal happens before them, which is what
is under test. The collaborators (connections, backends) are real objects pointed nowhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest

from auth_migration.admin.api import build_admin_resolver, handle_admin_event
from auth_migration.admin.service import AdminService
from auth_migration.backends.supabase import SupabaseAuthBackend
from auth_migration.batch_worker import failure_reason, handle_sqs_event
from auth_migration.connections import Connections
from auth_migration.dual_write.api import build_resolver, handle_api_event
from auth_migration.dual_write.reconcile import Reconciler
from auth_migration.dual_write.reconcile_worker import handle_reconcile_event
from auth_migration.dual_write.service import AuthService
from auth_migration.engine import EngineContext
from auth_migration.exceptions import InvalidRequest
from auth_migration.flags import Flags
from auth_migration.observability import logger as service_logger
from auth_migration_ops.local.invoke import LocalLambdaContext, load_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
API_FOLDERS = ["signup", "login", "admin"]
SQS_FOLDERS = ["migrate_batch", "reconcile"]
#: The message id and body of `sam local generate-event sqs receive-message`.
SQS_MESSAGE_ID = "19dd0b57-b21e-4ac1-bd88-01bbb068cb78"
SQS_BODY = "Hello from SQS!"
#: Nothing listens here: a test that reached a database or an auth system would fail loudly.
NOWHERE_DB = "postgresql://postgres@127.0.0.1:1/nowhere"
CONTEXT = cast(Any, LocalLambdaContext(function_name="TestFunction", timeout_s=10, memory_limit_in_mb=512))


def _never(*_args: Any) -> Any:
    raise AssertionError("the refusal must come before any collaborator is asked")


def _api_call(folder: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The entry of the function whose code dir is `folder`, with collaborators that must not be asked."""
    if folder == "admin":
        admin = build_admin_resolver(lambda: cast(AdminService, _never()))
        return lambda event: handle_admin_event(event, CONTEXT, admin)
    auth = build_resolver(lambda: cast(AuthService, _never()), lambda: cast(Flags, _never()))
    return lambda event: handle_api_event(event, CONTEXT, auth)


def _body(reply: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(reply["body"])
    assert isinstance(body, dict)
    return body


def _engine() -> EngineContext:
    return EngineContext(connections=Connections(NOWHERE_DB, NOWHERE_DB, NOWHERE_DB), retry_base_s=0.0)


def _reconciler() -> Reconciler:
    return Reconciler(
        supabase=SupabaseAuthBackend("http://127.0.0.1:1/auth/v1", service_key="unused"),
        connections=Connections(NOWHERE_DB, NOWHERE_DB, NOWHERE_DB),
    )


def _sqs_call(folder: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    if folder == "migrate_batch":
        ctx = _engine()
        return lambda event: handle_sqs_event(event, CONTEXT, ctx)
    reconciler = _reconciler()
    return lambda event: handle_reconcile_event(event, CONTEXT, reconciler, None)


@contextmanager
def service_log_lines() -> Iterator[list[dict[str, Any]]]:
    """The service logger's JSON lines written inside the block (Powertools' formatter, as in Lambda)."""
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Collect()
    handler.setFormatter(service_logger.registered_formatter)
    ours = logging.getLogger(service_logger.name)
    ours.addHandler(handler)
    try:
        yield lines
    finally:
        ours.removeHandler(handler)


# --- the API functions (Signup, Login, Admin: all through rest.guard_event) ------------------------------


@pytest.mark.parametrize("folder", API_FOLDERS)
def test_an_http_api_payload_2_event_is_a_400_naming_the_payload_version(folder: str) -> None:
    event = load_event(EVENTS / folder / "generated_apigateway_http_api_proxy.json")

    reply = _api_call(folder)(event)

    assert reply["statusCode"] == 400
    assert reply["headers"]["Content-Type"] == "application/json"
    body = _body(reply)
    assert body["error"] == "unsupported_event"
    assert "payload format 2.0" in body["message"]
    assert "REST API" in body["message"]


@pytest.mark.parametrize("folder", API_FOLDERS)
def test_the_generated_rest_proxy_event_is_a_clear_4xx(folder: str) -> None:
    # POST /path/to/resource, base64 {"test":"body"} without a content type: refused for its media type
    # before any route (or collaborator) is looked at.
    event = load_event(EVENTS / folder / "generated_apigateway_aws_proxy.json")

    reply = _api_call(folder)(event)

    assert reply["statusCode"] == 415
    assert _body(reply)["error"] == "unsupported_media_type"


@pytest.mark.parametrize("folder", API_FOLDERS)
def test_the_generated_rest_proxy_event_sent_as_json_finds_no_route(folder: str) -> None:
    event = load_event(EVENTS / folder / "generated_apigateway_aws_proxy.json")
    event["headers"]["Content-Type"] = "application/json"

    reply = _api_call(folder)(event)

    assert reply["statusCode"] == 404
    assert _body(reply)["error"] == "not_found"


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"action": "sweep"},
        load_event(EVENTS / "reconcile" / "generated_cloudwatch_scheduled_event.json"),
        {"httpMethod": "POST", "path": "/auth/login"},  # no requestContext: no API Gateway sent it
        {"httpMethod": "POST", "path": "/auth/login", "requestContext": {}, "headers": ["content-type"]},
    ],
    ids=["empty", "direct_invoke", "schedule", "no_request_context", "headers_not_an_object"],
)
@pytest.mark.parametrize("folder", API_FOLDERS)
def test_an_event_that_is_no_rest_proxy_event_is_a_400(folder: str, event: dict[str, Any]) -> None:
    reply = _api_call(folder)(event)

    assert reply["statusCode"] == 400
    assert _body(reply)["error"] == "unsupported_event"


@pytest.mark.parametrize("folder", API_FOLDERS)
def test_an_event_that_is_not_an_object_is_a_400(folder: str) -> None:
    reply = _api_call(folder)(cast(dict[str, Any], ["not", "an", "event"]))

    assert reply["statusCode"] == 400
    assert _body(reply)["error"] == "unsupported_event"
    assert "got a JSON array" in _body(reply)["message"]


def test_the_refusal_of_an_http_api_event_never_echoes_it() -> None:
    event = load_event(EVENTS / "login" / "generated_apigateway_http_api_proxy.json")
    event["body"] = json.dumps({"email": "ada@example.com", "password": "Sup3r-S3cret-canary"})
    event["isBase64Encoded"] = False

    with service_log_lines() as lines:
        reply = _api_call("login")(event)

    assert reply["statusCode"] == 400
    shown = json.dumps(reply) + json.dumps(lines)
    assert "Sup3r-S3cret-canary" not in shown
    assert "ada@example.com" not in shown
    assert [line["message"] for line in lines] == ["unsupported event"]


# --- the SQS functions (MigrateBatch, Reconcile) -----------------------------------------------------------


@pytest.mark.parametrize("folder", SQS_FOLDERS)
def test_a_generated_sqs_event_whose_only_record_fails_is_answered_not_raised(folder: str) -> None:
    event = load_event(EVENTS / folder / "generated_sqs_receive_message.json")

    with service_log_lines() as lines:
        reply = _sqs_call(folder)(event)

    assert reply == {"batchItemFailures": [{"itemIdentifier": SQS_MESSAGE_ID}]}
    (failed,) = [line for line in lines if line.get("message_id") == SQS_MESSAGE_ID]
    assert failed["level"] == "WARNING"
    assert failed["reason"].startswith("JSONDecodeError: ")
    assert failed["receive_count"] == "1"
    assert SQS_BODY not in json.dumps(lines)


@pytest.mark.parametrize("folder", SQS_FOLDERS)
def test_every_failed_record_is_reported_and_logged_once(folder: str) -> None:
    event = load_event(EVENTS / folder / "generated_sqs_receive_message.json")
    (template,) = event["Records"]
    bodies = {"m-text": SQS_BODY, "m-array": "[1, 2]", "m-object": json.dumps({"email": "ada@example.com"})}
    event["Records"] = [{**template, "messageId": mid, "body": body} for mid, body in bodies.items()]

    with service_log_lines() as lines:
        reply = _sqs_call(folder)(event)

    assert reply == {"batchItemFailures": [{"itemIdentifier": mid} for mid in bodies]}
    failures = [line for line in lines if line.get("message_id") in bodies]
    assert [line["message_id"] for line in failures] == list(bodies)
    assert failures[0]["reason"].startswith("JSONDecodeError")
    assert failures[1]["reason"].startswith("InvalidRequest: ")
    assert failures[2]["reason"].startswith("InvalidRequest: ")
    assert "ada@example.com" not in json.dumps(lines)


def test_a_failure_reason_keeps_only_text_that_cannot_hold_the_body_or_a_database_value() -> None:
    try:
        json.loads(SQS_BODY)
    except json.JSONDecodeError as exc:
        decode_error = exc
    detail = psycopg.errors.UniqueViolation("duplicate key value\nDETAIL:  Key (email)=(ada@example.com) exists.")

    assert failure_reason(InvalidRequest("batch message body must be a JSON object")) == (
        "InvalidRequest: batch message body must be a JSON object"
    )
    assert failure_reason(decode_error) == "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"
    assert failure_reason(detail) == "UniqueViolation"
    assert failure_reason(KeyError("ada@example.com")) == "KeyError"
    assert failure_reason(None) == "unknown"
