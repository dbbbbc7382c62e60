"""The REST routes POST /auth/signup and POST /auth/login on Powertools Event Handler, with validation.

Both functions (Signup, Login) resolve the same resolver: API Gateway sends each only its own route.
Every reply is JSON; every refusal is a 4xx with {error, message}; no reply ever echoes the request
body (a validation error names the field and the problem, never the value it saw).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.backends.errors import (
    BackendError,
    BadRequest,
    EmailNotConfirmed,
    InvalidCredentials,
    RateLimited,
    UserExists,
    WeakPassword,
)
from auth_migration.dual_write.api_models import AuthReply, LoginRequest, SignupRequest
from auth_migration.dual_write.service import AuthService
from auth_migration.exceptions import ConfigError
from auth_migration.flags import Flags
from auth_migration.observability import logger, metrics
from auth_migration.rest import JSON, MAX_BODY_BYTES, ErrorReply, field_problems, guard_event
from auth_migration.rest import error_reply as _error
from auth_migration.rest import json_reply as _reply

__all__ = ["MAX_BODY_BYTES", "build_resolver", "handle_api_event", "openapi_schema"]

_JSON: Final = JSON
_MESSAGES: Final[Mapping[type[BackendError], tuple[int, str, str]]] = {
    UserExists: (409, "user_exists", "An account with this email already exists."),
    WeakPassword: (422, "weak_password", "The password does not meet the requirements."),
    EmailNotConfirmed: (403, "email_not_confirmed", "Confirm your email address before signing in."),
    InvalidCredentials: (401, "invalid_credentials", "Invalid email or password."),
    BadRequest: (400, "invalid_request", "The request was refused by the auth system."),
    RateLimited: (429, "rate_limited", "Too many attempts; try again later."),
}
_UNAVAILABLE: Final = (503, "unavailable", "The auth service is temporarily unavailable; try again shortly.")

# --- the routes' documentation (docs/openapi.json): every status the code below and guard_event answer ---
_JSON_ONLY: Final = (
    "JSON only, by design: a body without `Content-Type: application/json` is refused with 415, "
    "`text/plain` included. That is a CSRF defence: a browser sends application/json cross-site only after "
    "a CORS preflight, so a form or a `no-cors` fetch on another site cannot sign anyone up or in."
)
_INVALID_BODY: Final = (
    "Invalid body, `invalid_request`: not UTF-8 JSON, not one JSON object, or a field breaking the schema "
    "(details: one {field, problem} each, never the value); or an auth system refused the request as malformed"
)
_TOO_LARGE: Final = f"Body over {MAX_BODY_BYTES} bytes, `payload_too_large` (checked before the body is parsed)"
_NOT_JSON: Final = "No Content-Type or not application/json, `unsupported_media_type`: see the description"
_RATE_LIMITED: Final = "An auth system rate-limited the attempt, `rate_limited`"
_UNAVAILABLE_DOC: Final = (
    "No auth system answered in time, or a signup's outcome is unknown (retry later), `unavailable`"
)
#: Sent with every 429 and 503 an auth system caused (its own hint, else 1); not with a configuration failure.
_RETRY_AFTER: Final[dict[str, OpenAPIResponseHeader]] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (the auth system's hint, rounded up; at least 1)",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    }
}


def _refusal(description: str, headers: dict[str, OpenAPIResponseHeader] | None = None) -> OpenAPIResponse:
    response: OpenAPIResponse = {"description": description, "content": {_JSON: {"model": ErrorReply}}}
    if headers:
        response["headers"] = headers
    return response


def build_resolver(service: Callable[[], AuthService], flags: Callable[[], Flags]) -> APIGatewayRestResolver:
    """The resolver with both routes; `service` and `flags` are called per request (flags: one snapshot)."""
    app = APIGatewayRestResolver(enable_validation=True)

    def client_ip() -> str | None:
        ip = app.current_event.request_context.identity.source_ip
        return ip or None

    @app.post(
        "/auth/signup",
        summary="Create a user in the system(s) the migration mode names",
        description=_JSON_ONLY,
        responses={
            200: {"description": "Created", "content": {_JSON: {"model": AuthReply}}},
            400: _refusal(_INVALID_BODY),
            409: _refusal("Email already registered (in either system: no takeover), `user_exists`"),
            413: _refusal(_TOO_LARGE),
            415: _refusal(_NOT_JSON),
            422: _refusal("The password breaks an auth system's policy, `weak_password`"),
            429: _refusal(_RATE_LIMITED, headers=_RETRY_AFTER),
            503: _refusal(_UNAVAILABLE_DOC, headers=_RETRY_AFTER),
        },
    )
    def signup(body: Annotated[SignupRequest, Body()]) -> Response[str]:
        outcome = service().signup(flags(), str(body.email), body.password, body.metadata, client_ip=client_ip())
        metrics.add_metric(name=f"Signup_{outcome.result.system}", unit="Count", value=1)
        logger.info("signup", extra={"system": outcome.result.system, "user_id": outcome.result.user.id})
        return _reply(200, AuthReply.of(outcome.result).model_dump())

    @app.post(
        "/auth/login",
        summary="Sign in: primary first, the other system on failure; lazy migration on Supabase success",
        description=_JSON_ONLY,
        responses={
            200: {"description": "Signed in", "content": {_JSON: {"model": AuthReply}}},
            400: _refusal(_INVALID_BODY),
            401: _refusal("Invalid email or password (unknown user and wrong password alike), `invalid_credentials`"),
            403: _refusal("The password matched but the email is not confirmed yet, `email_not_confirmed`"),
            413: _refusal(_TOO_LARGE),
            415: _refusal(_NOT_JSON),
            429: _refusal(_RATE_LIMITED, headers=_RETRY_AFTER),
            503: _refusal(_UNAVAILABLE_DOC, headers=_RETRY_AFTER),
        },
    )
    def login(body: Annotated[LoginRequest, Body()]) -> Response[str]:
        outcome = service().login(flags(), str(body.email), body.password, client_ip=client_ip())
        metrics.add_metric(name=f"Login_{outcome.result.system}", unit="Count", value=1)
        if outcome.lazy_migrated:
            metrics.add_metric(name="LazyMigrated", unit="Count", value=1)
        logger.info(
            "login",
            extra={
                "system": outcome.result.system,
                "user_id": outcome.result.user.id,
                "lazy_migrated": outcome.lazy_migrated,
            },
        )
        return _reply(200, AuthReply.of(outcome.result).model_dump())

    # Powertools' exception_handler decorator is untyped; the handlers themselves are fully typed.
    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def invalid_body(exc: RequestValidationError) -> Response[str]:
        metrics.add_metric(name="AuthRefused_invalid_request", unit="Count", value=1)
        return _error(400, "invalid_request", "The request body is invalid.", details=field_problems(exc))

    @app.exception_handler(BackendError)  # type: ignore[untyped-decorator]
    def backend_error(exc: BackendError) -> Response[str]:
        for kind in type(exc).__mro__:
            if kind in _MESSAGES:
                status, error, message = _MESSAGES[kind]
                break
        else:
            status, error, message = _UNAVAILABLE
            logger.warning("auth systems unavailable", extra={"system": exc.system, "error": exc.kind})
        metrics.add_metric(name=f"AuthRefused_{error}", unit="Count", value=1)
        headers = None
        if status in (429, 503):
            retry = getattr(exc, "retry_after", None)
            seconds = math.ceil(retry) if isinstance(retry, int | float) and retry > 0 else 1
            headers = {"Retry-After": str(seconds)}
        return _error(status, error, message, headers=headers)

    @app.exception_handler(ConfigError)  # type: ignore[untyped-decorator]
    def misconfigured(exc: ConfigError) -> Response[str]:
        logger.error("configuration error", extra={"error": str(exc)})
        return _error(*_UNAVAILABLE)

    @app.not_found
    def not_found(_exc: Exception) -> Response[str]:
        return _error(404, "not_found", "No such route.")

    return app


def handle_api_event(event: Mapping[str, Any], context: LambdaContext, app: APIGatewayRestResolver) -> dict[str, Any]:
    """The body checks of auth_migration.rest.guard_event, then the resolver."""
    return guard_event(event, context, app, refused_metric="AuthRefused")


def openapi_schema(app: APIGatewayRestResolver) -> dict[str, Any]:
    """The API's OpenAPI 3.1 document (served by `auth-migrate openapi` and kept in docs/openapi.json)."""
    schema: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title="Auth migration API", version="1.0.0", description=__doc__)
    )
    return schema
