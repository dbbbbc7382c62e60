"""The admin routes on Powertools Event Handler: GET/PUT /admin/rollout, GET /admin/migrations/{id}.

API Gateway authorises every call with IAM (SigV4); the caller's ARN from the request context is the
actor in the audit. A request without one (the API deployed without AWS_IAM by mistake) is refused:
an unauthenticated change of production routing must not be possible even through a misconfiguration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Final

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.admin.dashboard import register_dashboard
from auth_migration.admin.models import (
    MigrationReport,
    RolloutChange,
    RolloutChangeReply,
    RolloutRefusal,
    RolloutView,
)
from auth_migration.admin.service import AdminService, Unsafe
from auth_migration.exceptions import ConfigError, DatabaseUnavailable, InvalidRequest, NotFound
from auth_migration.observability import logger, metrics
from auth_migration.rest import (
    JSON,
    MAX_BODY_BYTES,
    ErrorReply,
    error_reply,
    field_problems,
    guard_event,
    json_reply,
)
from auth_migration.rollout.audit import AuditEntry

__all__ = ["build_admin_resolver", "handle_admin_event", "log_audit_failure"]

#: The routes' security requirement: the scheme "sigv4" of admin.openapi.SECURITY_SCHEMES (kept out of
#: this module: Powertools' OpenAPI models cost ~60 ms of cold start and only the document uses them).
_SIGV4: Final[list[dict[str, list[str]]]] = [{"sigv4": []}]
_TAGS: Final = ["admin"]


def _error_doc(description: str, headers: dict[str, OpenAPIResponseHeader] | None = None) -> OpenAPIResponse:
    response: OpenAPIResponse = {"description": description, "content": {JSON: {"model": ErrorReply}}}
    if headers:
        response["headers"] = headers
    return response


# What the handlers below and guard_event answer, for docs/openapi.json (API Gateway's own replies, IAM
# refusals and throttling, are added where the two APIs are merged: auth_migration.openapi).
_TOO_LARGE: Final = _error_doc(f"Body over {MAX_BODY_BYTES} bytes, `payload_too_large` (any method)")
_UNAVAILABLE_DOC: Final = _error_doc(
    "SSM or the state database unreachable, `unavailable`; nothing (more) was written",
    headers={
        "Retry-After": {
            "description": "Seconds to wait; sent when the state database is unreachable (5), not for SSM",
            "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
        }
    },
)


class _NoIdentity(Exception):
    pass


def build_admin_resolver(service: Callable[[], AdminService], *, stage: str = "dev") -> APIGatewayRestResolver:
    """The resolver with the rollout and migration routes and the dashboard's; `service` is called per
    request; `stage` is shown on the dashboard."""
    app = APIGatewayRestResolver(enable_validation=True)

    def caller() -> str:
        identity = app.current_event.request_context.identity
        arn = identity.user_arn
        if not arn:
            raise _NoIdentity
        return arn

    @app.get(
        "/admin/rollout",
        summary="The rollout now: flags (stored, in force, problems), phase, health, canary figures, plan",
        tags=_TAGS,
        security=_SIGV4,
        responses={
            200: {"description": "The rollout", "content": {JSON: {"model": RolloutView}}},
            403: _error_doc("No IAM identity in the request, `forbidden`"),
            413: _TOO_LARGE,
            503: _UNAVAILABLE_DOC,
        },
    )
    def get_rollout() -> Response[str]:
        caller()
        return json_reply(200, service().rollout_view().model_dump(mode="json"))

    @app.put(
        "/admin/rollout",
        summary="Change the rollout: a phase (checked), flags, or an emergency rollback; ordered and audited",
        description=(
            "Exactly one of `phase`, `flags`, `emergency_rollback`. Validated like `auth-migrate flags set` "
            "(a bad key or value is a 400 and nothing is written), written to SSM in an order where no state "
            "in between is less safe than both ends, then audited in flag_changes (source admin-api, actor "
            "the caller's IAM ARN). A phase a safety check refuses is a 409 unless `force` (audited as "
            "forced). `dry_run` answers what would change and writes nothing."
        ),
        tags=_TAGS,
        security=_SIGV4,
        responses={
            200: {
                "description": "Applied (or, for a dry run, planned)",
                "content": {JSON: {"model": RolloutChangeReply}},
            },
            400: _error_doc(
                "Invalid body (not one JSON object, not exactly one request), unknown flag or bad value, "
                "`invalid_request`; nothing was written"
            ),
            403: _error_doc("No IAM identity in the request, `forbidden`"),
            409: {
                "description": "Refused by a safety check (`unsafe`, with the blockers); pass `force` to override",
                "content": {JSON: {"model": RolloutRefusal}},
            },
            413: _TOO_LARGE,
            415: _error_doc("No Content-Type or not application/json, `unsupported_media_type`"),
            503: _UNAVAILABLE_DOC,
        },
    )
    def put_rollout(body: Annotated[RolloutChange, Body()]) -> Response[str]:
        actor = caller()
        reply = service().change_rollout(body, actor=actor)
        if reply.applied:
            metrics.add_metric(name="RolloutChanged", unit="Count", value=1)
            # Flag names only: CANARY_WHITELIST's values are emails.
            logger.info(
                "rollout changed through the admin API",
                extra={"actor": actor, "target": reply.target, "flags": [c.flag for c in reply.changes]},
            )
        return json_reply(200, reply.model_dump(mode="json"))

    @app.get(
        "/admin/migrations/<migration_id>",
        summary="One migration's progress and report: counters, outcomes, errors by code, users/s",
        tags=_TAGS,
        security=_SIGV4,
        responses={
            200: {"description": "The report", "content": {JSON: {"model": MigrationReport}}},
            400: _error_doc("Malformed migration id, `invalid_request`"),
            403: _error_doc("No IAM identity in the request, `forbidden`"),
            404: _error_doc("No such migration, `not_found`"),
            413: _TOO_LARGE,
            503: _UNAVAILABLE_DOC,
        },
    )
    def get_migration(
        migration_id: Annotated[
            str,
            Path(
                min_length=1,
                max_length=100,
                description=(
                    "The id `auth-migrate migrate start` printed (a UUID). At most 100 characters as the function "
                    "receives it: API Gateway hands path parameters on percent-encoded, so the document names "
                    "URL-safe characters only; any other id is a 400 or a 404."
                ),
                # Documentation only (the handler's checks are min/max length): see the description.
                json_schema_extra={"pattern": "^[A-Za-z0-9._~-]+$"},
            ),
        ],
    ) -> Response[str]:
        caller()
        return json_reply(200, service().migration(migration_id).model_dump(mode="json"))

    # Powertools' exception_handler decorator is untyped; the handlers themselves are fully typed.
    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def invalid(exc: RequestValidationError) -> Response[str]:
        return _refused(400, "invalid_request", "The request is invalid.", details=field_problems(exc))

    @app.exception_handler(InvalidRequest)  # type: ignore[untyped-decorator]
    def invalid_value(exc: InvalidRequest) -> Response[str]:
        return _refused(400, "invalid_request", str(exc))

    @app.exception_handler(NotFound)  # type: ignore[untyped-decorator]
    def not_found(exc: NotFound) -> Response[str]:
        return _refused(404, "not_found", str(exc))

    @app.exception_handler(_NoIdentity)  # type: ignore[untyped-decorator]
    def no_identity(_exc: _NoIdentity) -> Response[str]:
        logger.error("admin request without an IAM identity: is the API deployed with AWS_IAM authorisation?")
        return _refused(403, "forbidden", "This API needs IAM (SigV4) authorisation.")

    @app.exception_handler(Unsafe)  # type: ignore[untyped-decorator]
    def unsafe(exc: Unsafe) -> Response[str]:
        metrics.add_metric(name="AdminRefused_unsafe", unit="Count", value=1)
        body = {"error": "unsafe", "message": f"{exc}: fix the blockers or pass force (audited)"}
        return json_reply(409, RolloutRefusal.model_validate({**body, **exc.proposal.as_json()}).model_dump())

    @app.exception_handler(ConfigError)  # type: ignore[untyped-decorator]
    def unavailable_ssm(exc: ConfigError) -> Response[str]:
        logger.error("admin request failed on its configuration or SSM", extra={"error": str(exc)})
        return _refused(503, "unavailable", "SSM is unreachable or refused; nothing more was written.")

    @app.exception_handler(DatabaseUnavailable)  # type: ignore[untyped-decorator]
    def unavailable_db(exc: DatabaseUnavailable) -> Response[str]:
        return _database_down(exc)

    @app.exception_handler(psycopg.OperationalError)  # type: ignore[untyped-decorator]
    def unavailable_pg(exc: psycopg.OperationalError) -> Response[str]:
        return _database_down(exc)

    @app.not_found
    def no_route(_exc: Exception) -> Response[str]:
        return _refused(404, "not_found", "No such route.")

    register_dashboard(app, service, caller, stage=stage)
    return app


def _refused(status: int, error: str, message: str, **extra: Any) -> Response[str]:
    metrics.add_metric(name=f"AdminRefused_{error}", unit="Count", value=1)
    return error_reply(status, error, message, **extra)


def _database_down(exc: Exception) -> Response[str]:
    logger.error("admin request: the state database is unreachable", extra={"error": type(exc).__name__})
    return _refused(
        503,
        "unavailable",
        "The state database is unreachable; nothing was written (an emergency rollback still works).",
        headers={"Retry-After": "5"},
    )


def log_audit_failure(entries: Sequence[AuditEntry], exc: Exception) -> None:
    """SSM holds the change but flag_changes does not: keep the rows in the log, where they can be replayed."""
    logger.error(
        "audit rows not written: the change is in SSM; these rows belong in flag_changes",
        extra={"error": type(exc).__name__, "audit_rows": [_loggable(e) for e in entries]},
    )


def _loggable(entry: AuditEntry) -> dict[str, Any]:
    row = entry.as_json()
    if row["flag"] == "CANARY_WHITELIST":  # emails: personal data stays out of logs
        row["old"] = row["new"] = "(emails withheld)"
    return row


def handle_admin_event(event: Mapping[str, Any], context: LambdaContext, app: APIGatewayRestResolver) -> dict[str, Any]:
    return guard_event(event, context, app, refused_metric="AdminRefused")
