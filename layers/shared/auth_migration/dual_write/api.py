"""The REST routes POST /auth/signup, POST /auth/login and POST /auth/session/exchange on Powertools Event
Handler, with validation.

The functions (Signup, Login, SessionExchange) resolve the same resolver: API Gateway sends each only its
own route.
Every reply is JSON; every refusal is a 4xx with {error, message}; no reply ever echoes the request
body (a validation error names the field and the problem, never the value it saw).
"""

# (The docstring above is the OpenAPI document's description.) Each signup and login is observed here, in
# `observe`, where its whole latency is known: its metrics (docs/OBSERVABILITY.md) and its Sentry auth event.

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from auth_migration import sentry
from auth_migration.backends.base import BETTER_AUTH, SUPABASE
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
from auth_migration.dual_write.routing import route_for
from auth_migration.dual_write.service import AuthOutcome, AuthService
from auth_migration.exceptions import ConfigError
from auth_migration.flags import Flags
from auth_migration.observability import logger, metrics
from auth_migration.rest import JSON, MAX_BODY_BYTES, ErrorReply, field_problems, guard_event
from auth_migration.rest import error_reply as _error
from auth_migration.rest import json_reply as _reply
from auth_migration.rollout.checks import USER_ERROR_KINDS
from auth_migration.sessions.api_models import ExchangeReply, ExchangeRequest, ExchangeUserBody

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

    # The exchange itself (PyJWT, cryptography) is imported only by the SessionExchange function.
    from auth_migration.sessions.exchange import SessionExchanger

__all__ = ["MAX_BODY_BYTES", "build_resolver", "handle_api_event", "observe", "openapi_schema"]

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
Operation = Literal["signup", "login"]

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


def _refusal_of(exc: BackendError) -> tuple[int, str, str]:
    """The status, error code and message an auth system's error is answered with."""
    for kind in type(exc).__mro__:
        if kind in _MESSAGES:
            return _MESSAGES[kind]
    return _UNAVAILABLE


def _migration_context(flags: Flags) -> dict[str, Any]:
    """The flags that chose a request's route (Sentry's `migration` context); never the whitelist (emails)."""
    return {
        "migration_mode": flags.migration_mode.value,
        "better_auth_primary": flags.use_better_auth,
        "canary_enabled": flags.canary_enabled,
        "canary_percentage": flags.canary_percentage,
        "canary_user_selection": flags.canary_user_selection.value,
        "migration_validation": flags.migration_validation,
        "fallback_timeout_ms": flags.fallback_timeout_ms,
    }


def _ms_since(started: float, timer: Callable[[], float]) -> float:
    return round((timer() - started) * 1000, 3)


def _latency_metric(canary: bool, latency_ms: float) -> None:
    metrics.add_metric(
        name="AuthLatencyCanary" if canary else "AuthLatencyOthers", unit="Milliseconds", value=latency_ms
    )


def _outcome_metrics(operation: Operation, outcome: AuthOutcome) -> None:
    system = outcome.result.system
    metrics.add_metric(name=f"{operation.capitalize()}_{system}", unit="Count", value=1)
    if outcome.fallback:
        metrics.add_metric(name="Fallback", unit="Count", value=1)
    if operation == "signup" and outcome.gap_reasons:
        metrics.add_metric(name="DualWriteInconsistency", unit="Count", value=len(outcome.gap_reasons))
    if outcome.lazy_migrated:
        metrics.add_metric(name="LazyMigrated", unit="Count", value=1)
    if outcome.hash_upgraded:
        metrics.add_metric(name="HashUpgraded", unit="Count", value=1)


def observe(
    operation: Operation,
    email: str,
    flags: Callable[[], Flags],
    call: Callable[[Flags], AuthOutcome],
    *,
    timer: Callable[[], float] = time.monotonic,
) -> AuthOutcome:
    """Run one signup or login (`call`, with the request's one flag snapshot) and report it: its latency
    (AuthLatencyCanary / AuthLatencyOthers), what it caused (Signup_*/Login_*, Fallback, DualWriteInconsistency,
    LazyMigrated) and, when Sentry is on, its auth event. Errors are raised on, for the exception handlers."""
    started = timer()

    def elapsed_ms() -> float:
        return _ms_since(started, timer)

    address = email.strip().lower()
    try:
        snapshot = flags()
    except ConfigError as exc:
        latency = elapsed_ms()
        _latency_metric(False, latency)
        unknown = sentry.AuthRequest(operation, address, mode="unknown", primary="unknown", canary=False)
        with sentry.auth_event(unknown) as report:
            report.failed(
                system="flags", kind="config_error", status=503, latency_ms=latency, user_error=False, cause=exc
            )
        raise
    route = route_for(snapshot, email)
    request = sentry.AuthRequest(
        operation, address, route.mode.value, route.primary, route.canary, _migration_context(snapshot)
    )
    with sentry.auth_event(request) as report:
        try:
            outcome = call(snapshot)
        except BackendError as exc:
            latency = elapsed_ms()
            _latency_metric(route.canary, latency)
            report.failed(
                system=exc.system,
                kind=exc.kind,
                status=_refusal_of(exc)[0],
                latency_ms=latency,
                user_error=exc.kind in USER_ERROR_KINDS,
                cause=exc,
            )
            raise
        latency = elapsed_ms()
        _latency_metric(route.canary, latency)
        _outcome_metrics(operation, outcome)
        held_by = outcome.result.system
        missing = SUPABASE if held_by == BETTER_AUTH else BETTER_AUTH
        report.succeeded(
            system=held_by,
            user_id=outcome.result.user.id,
            latency_ms=latency,
            fallback_from=outcome.primary_failure,
            lazy_migrated=outcome.lazy_migrated,
            hash_upgraded=outcome.hash_upgraded,
            inconsistencies=[(missing, reason) for reason in outcome.gap_reasons],
        )
    return outcome


_EXCHANGE_MESSAGES: Final[Mapping[str, str]] = {
    "invalid_token": "The session is not valid; sign in again.",
    "exchange_disabled": "Session exchange is turned off; sign in again.",
    "account_conflict": "This account cannot be signed in this way; sign in with your password.",
    "rate_limited": "Too many attempts; try again later.",
}
_SET_COOKIE: Final[dict[str, OpenAPIResponseHeader]] = {
    "Set-Cookie": {
        "description": (
            "Better-Auth's signed session cookie, as its sign-in sets it: `better-auth.session_token` "
            "(`__Secure-` prefixed over https), HttpOnly, SameSite=Lax, Path=/, Max-Age = the session's lifetime"
        ),
        "schema": {"type": "string"},
    }
}


def _validated_body(
    model: type[BaseModel],
) -> Callable[[APIGatewayRestResolver, NextMiddleware], Response[Any]]:
    """A route middleware that validates the JSON body with `model` and passes it to the route as `body`.

    What Event Handler's enable_validation did for these routes, without its validation machinery: nine
    modules (openapi.params, compat, dependant, encoders, the validation middlewares, pydantic's deprecated
    config) imported at init, and the routes' dependants built on the first request. Measured with
    bench.cold_start: the first refused request 4.4-6.0 ms -> 1.4-1.7 ms, and ~28 M of the ~3,100 M
    instructions of an init with the SSM client (~1 %; most of what those modules cost alone is pydantic's
    one-time setup, which our own models pay anyway). Bodies reach it through guard_event, always one JSON
    object; errors carry the same type, msg and ("body", ...) loc as Event Handler's, so `field_problems`
    words them alike. The route's plain `body: Model` parameter is what the OpenAPI document is generated
    from, as before (Event Handler takes a pydantic model parameter as the body).
    """

    def validate(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        try:
            body = model.model_validate(app.current_event.json_body)
        except json.JSONDecodeError as exc:
            # As Event Handler words it (only a caller of app.resolve without guard_event can get here).
            problem = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}
            raise RequestValidationError([problem]) from None
        except ValidationError as exc:
            # include_input=False: the value seen (a password, say) is never carried along.
            errors = exc.errors(include_url=False, include_input=False)
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
        # Where Event Handler's own validation middleware leaves the route's validated arguments.
        app.context["_route_args"] = {**app.context.get("_route_args", {}), "body": body}
        return next_middleware(app)

    return validate


def build_resolver(
    service: Callable[[], AuthService],
    flags: Callable[[], Flags],
    *,
    exchanger: Callable[[], SessionExchanger] | None = None,
    timer: Callable[[], float] = time.monotonic,
) -> APIGatewayRestResolver:
    """The resolver with every auth route; `service`, `exchanger` and `flags` are called per request (flags:
    one snapshot). Without `exchanger` the exchange route answers 503 (a function not built for it).
    `timer` (monotonic seconds) measures each request's latency; tests pin it."""
    # No enable_validation: each route validates its body with _validated_body (same replies, less init).
    app = APIGatewayRestResolver()

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
        middlewares=[_validated_body(SignupRequest)],
    )
    def signup(body: SignupRequest) -> Response[str]:
        email = str(body.email)
        outcome = observe(
            "signup",
            email,
            flags,
            lambda snapshot: service().signup(snapshot, email, body.password, body.metadata, client_ip=client_ip()),
            timer=timer,
        )
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
        middlewares=[_validated_body(LoginRequest)],
    )
    def login(body: LoginRequest) -> Response[str]:
        email = str(body.email)
        outcome = observe(
            "login",
            email,
            flags,
            lambda snapshot: service().login(snapshot, email, body.password, client_ip=client_ip()),
            timer=timer,
        )
        logger.info(
            "login",
            extra={
                "system": outcome.result.system,
                "user_id": outcome.result.user.id,
                "lazy_migrated": outcome.lazy_migrated,
            },
        )
        return _reply(200, AuthReply.of(outcome.result).model_dump())

    @app.post(
        "/auth/session/exchange",
        summary="Exchange a Supabase session for a Better-Auth session of the same user (nobody is logged out)",
        description=(
            "Takes the access token or the refresh token of a signed-in Supabase user (exactly one) and answers "
            "what Better-Auth's sign-in "
            "answers: the session token, the user, and the signed session cookie. A user Better-Auth does not "
            "hold yet is migrated first. Works in every migration phase while the SESSION_EXCHANGE flag is on. "
            + _JSON_ONLY
        ),
        responses={
            200: {
                "description": "A Better-Auth session was created",
                "content": {_JSON: {"model": ExchangeReply}},
                "headers": _SET_COOKIE,
            },
            400: _refusal(_INVALID_BODY),
            401: _refusal(
                "Not a live Supabase session, `invalid_token`: bad signature or algorithm, expired, wrong "
                "audience or issuer, unknown, deleted or banned user, signed-out or expired session, unknown, "
                "rotated or already exchanged refresh token (a reuse also ends that Supabase session)"
            ),
            403: _refusal("The SESSION_EXCHANGE flag is off (after the cutover window), `exchange_disabled`"),
            409: _refusal("Better-Auth holds this email under another user id, `account_conflict`"),
            413: _refusal(_TOO_LARGE),
            415: _refusal(_NOT_JSON),
            429: _refusal("Too many exchanges from this IP or for this user, `rate_limited`", headers=_RETRY_AFTER),
            503: _refusal("A database the exchange needs is unreachable, `unavailable`", headers=_RETRY_AFTER),
        },
        middlewares=[_validated_body(ExchangeRequest)],
    )
    def session_exchange(body: ExchangeRequest) -> Response[str]:
        # Imported here: the exchange's errors live with it, beside PyJWT (not in Signup/Login's cold start).
        from auth_migration.sessions.exchange import ExchangeRefused, ExchangeUnavailable

        if exchanger is None:
            raise ConfigError("this function does not serve the session exchange")
        snapshot = flags()
        started = timer()
        kind = "access" if body.access_token is not None else "refresh"
        with sentry.exchange_event(
            token_kind=kind, mode=snapshot.migration_mode.value, migration=_migration_context(snapshot)
        ) as report:
            try:
                result = exchanger().exchange(
                    snapshot,
                    access_token=body.access_token,
                    refresh_token=body.refresh_token,
                    client_ip=client_ip(),
                    user_agent=app.current_event.headers.get("user-agent"),
                )
            except ExchangeRefused as exc:
                report.refused(
                    status=exc.status,
                    error=exc.error,
                    reason=exc.reason,
                    latency_ms=_ms_since(started, timer),
                    user_id=exc.user_id,
                )
                metrics.add_metric(name=f"SessionExchangeRefused_{exc.reason}", unit="Count", value=1)
                logger.info("session exchange refused", extra={"error": exc.error, "reason": exc.reason})
                headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
                return _error(exc.status, exc.error, _EXCHANGE_MESSAGES[exc.error], headers=headers)
            except ExchangeUnavailable as exc:
                report.unavailable(reason=exc.reason, latency_ms=_ms_since(started, timer), cause=exc)
                metrics.add_metric(name="AuthFailed", unit="Count", value=1)
                logger.warning("session exchange unavailable", extra={"reason": exc.reason})
                return _error(*_UNAVAILABLE, headers={"Retry-After": "1"})
            latency = _ms_since(started, timer)
            report.exchanged(user_id=result.user.id, latency_ms=latency, lazy_migrated=result.lazy_migrated)
        metrics.add_metric(name="SessionExchanged", unit="Count", value=1)
        metrics.add_metric(name="SessionExchangeLatency", unit="Milliseconds", value=latency)
        if result.lazy_migrated:
            metrics.add_metric(name="LazyMigrated", unit="Count", value=1)
        logger.info("session exchanged", extra={"user_id": result.user.id, "lazy_migrated": result.lazy_migrated})
        user = result.user
        reply = ExchangeReply(
            token=result.session.token,
            user=ExchangeUserBody(
                id=user.id,
                email=user.email,
                name=user.name,
                image=user.image,
                emailVerified=user.email_verified,
                createdAt=user.created_at,
                updatedAt=user.updated_at,
            ),
        )
        response = _reply(200, reply.model_dump(mode="json", by_alias=True))
        response.cookies.append(result.cookie)
        return response

    # Powertools' exception_handler decorator is untyped; the handlers themselves are fully typed.
    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def invalid_body(exc: RequestValidationError) -> Response[str]:
        metrics.add_metric(name="AuthRefused_invalid_request", unit="Count", value=1)
        return _error(400, "invalid_request", "The request body is invalid.", details=field_problems(exc))

    @app.exception_handler(BackendError)  # type: ignore[untyped-decorator]
    def backend_error(exc: BackendError) -> Response[str]:
        status, error, message = _refusal_of(exc)
        if status == _UNAVAILABLE[0]:
            logger.warning("auth systems unavailable", extra={"system": exc.system, "error": exc.kind})
            metrics.add_metric(name="AuthFailed", unit="Count", value=1)
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
        metrics.add_metric(name="AuthFailed", unit="Count", value=1)
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
