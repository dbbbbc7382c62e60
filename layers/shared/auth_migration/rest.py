"""What every REST API of the bundle (the auth API, the admin API) answers alike: JSON replies with
{error, message[, details]} refusals, field problems that never echo the caller's text, and the body
checks made before Powertools' resolver sees an event."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from auth_migration.observability import logger, metrics

__all__ = [
    "JSON",
    "MAX_BODY_BYTES",
    "ErrorReply",
    "error_reply",
    "field_problems",
    "guard_event",
    "json_reply",
]

#: Far above any real request (4 KB of signup metadata at most) and far below API Gateway's 10 MB.
MAX_BODY_BYTES: Final = 16 * 1024
JSON: Final = "application/json"
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_REST_PROXY: Final = "API Gateway REST API proxy events (payload format 1.0)"
_JSON_KINDS: Final[Mapping[type, str]] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class ErrorReply(BaseModel):
    error: str
    message: str
    details: list[dict[str, str]] | None = None


def json_reply(
    status: int, body: Mapping[str, Any] | list[Any], headers: Mapping[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":"), default=str),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_reply(status: int, error: str, message: str, **extra: Any) -> Response[str]:
    headers = extra.pop("headers", None)
    return json_reply(status, ErrorReply(error=error, message=message, **extra).model_dump(exclude_none=True), headers)


def field_problems(exc: RequestValidationError) -> list[dict[str, str]]:
    """One {field, problem} per validation error, without the value seen (it may be a password)."""
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "path", "query")]
        kind = str(err.get("type", "invalid"))
        if kind == "extra_forbidden":
            # The field's name is the caller's text: say what is wrong without echoing it.
            problems.append({"field": "body", "problem": "unknown fields are not allowed"})
            continue
        message = "the body is not valid JSON" if kind == "json_invalid" else str(err.get("msg", "invalid"))
        # pydantic prefixes custom validator messages with "Value error, ": keep only ours.
        problems.append({"field": ".".join(loc) or "body", "problem": message.removeprefix("Value error, ")})
    return problems


def guard_event(
    event: Mapping[str, Any],
    context: LambdaContext,
    app: APIGatewayRestResolver,
    *,
    refused_metric: str,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> dict[str, Any]:
    """Size, media type and JSON syntax are checked here, before the resolver sees the body.

    Written by hand rather than left to Event Handler because its body parsing lets some hostile bodies
    through as 5xx (JSON nested thousands deep, integers past Python's digit limit, bad base64) and takes
    the first element of a JSON array as the body. Here every one of those is a 400, and the resolver
    gets a body that is known to be one JSON object in UTF-8. Methods without a body pass as they are.

    Before all that, the event must be an API Gateway REST proxy event (payload format 1.0): anything
    else (an HTTP API's payload 2.0, a direct invoke) would make the resolver raise KeyError, a 500 that
    says nothing. It gets a 400 naming what arrived instead.
    """
    problem = _not_a_rest_proxy_event(event)
    if problem is not None:
        # A wiring mistake (an HTTP API or a test harness in front of this function), not a hostile
        # caller: the operator needs to see it. The event itself is not logged: its body may be a password.
        logger.warning("unsupported event", extra={"problem": problem})
        return _raw(refused_metric, 400, "unsupported_event", f"This function takes {_REST_PROXY}; {problem}.")
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        return _invalid(refused_metric, "the body is not text")
    if len(raw.encode("utf-8")) > max_body_bytes * (4 / 3 if event.get("isBase64Encoded") else 1):
        return _raw(refused_metric, 413, "payload_too_large", f"The body must be at most {max_body_bytes} bytes.")
    if event.get("httpMethod") not in _BODY_METHODS:
        return app.resolve(dict(event), context)
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        return _raw(refused_metric, 415, "unsupported_media_type", "Send the body as application/json.")
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8") if event.get("isBase64Encoded") else raw
        parsed = json.loads(text)
    except (ValueError, RecursionError, binascii.Error):
        # ValueError covers JSON syntax, UnicodeDecodeError and integers past the digit limit.
        return _invalid(refused_metric, "the body is not valid JSON")
    if not isinstance(parsed, dict):
        return _invalid(refused_metric, "the body must be a JSON object")
    clean = {k: v for k, v in event.items() if k not in ("headers", "multiValueHeaders")}
    # One lowercase content type: Event Handler compares it case-sensitively.
    clean["headers"] = {**{k: v for k, v in headers.items() if k != "content-type"}, "content-type": JSON}
    clean["multiValueHeaders"] = {k: [v] for k, v in clean["headers"].items()}
    clean["body"], clean["isBase64Encoded"] = text, False
    return app.resolve(clean, context)


def _not_a_rest_proxy_event(event: object) -> str | None:
    """What keeps `event` from being a REST proxy event, in words; None when it is one."""
    if not isinstance(event, Mapping):
        return f"got a JSON {_JSON_KINDS.get(type(event), 'value')}, not an object"
    version = event.get("version")
    if version == "2.0":
        return "got payload format 2.0 (an API Gateway HTTP API event)"
    # HTTP APIs' payload format 1.0 has the REST shape, which is why it passes.
    if not isinstance(event.get("httpMethod"), str) or not isinstance(event.get("path"), str):
        return "got an event without httpMethod and path"
    if not isinstance(event.get("requestContext"), Mapping):
        return "got an event without requestContext"
    if not isinstance(event.get("headers") or {}, Mapping):
        return "got headers that are not an object"
    return None


def _invalid(refused_metric: str, problem: str) -> dict[str, Any]:
    details = [{"field": "body", "problem": problem}]
    return _raw(refused_metric, 400, "invalid_request", "The request body is invalid.", details)


def _raw(
    refused_metric: str, status: int, error: str, message: str, details: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """A refusal made before the resolver runs, in the same shape as `error_reply`'s."""
    metrics.add_metric(name=f"{refused_metric}_{error}", unit="Count", value=1)
    body = ErrorReply(error=error, message=message, details=details).model_dump(exclude_none=True)
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON, "Cache-Control": "no-store"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }
