"""MigrationControl commands (start, resume, rollback, status): parse, run, and shape one JSON reply."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from auth_migration.engine import (
    EngineContext,
    migration_report,
    resume_migration,
    rollback_migration,
    start_migration,
)
from auth_migration.engine.plan import MAX_BATCH_SIZE, StartRequest
from auth_migration.exceptions import AuthMigrationError, ConfigError, InvalidRequest, NotFound, StateConflict
from auth_migration.flags import FlagSource
from auth_migration.targets.supabase import MAX_REQUESTS_PER_S


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartCommand(_Command):
    action: Literal["start"]
    source: Literal["supabase", "profiles"] = "supabase"
    target: Literal["better-auth", "supabase"] = "better-auth"
    dry_run: bool | None = None
    #: None: the target's measured default (engine.plan.DEFAULT_BATCH_SIZE; supabase: by its cap).
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE, strict=True)] | None = None
    transforms: list[str] | None = None
    #: The supabase target's cap on GoTrue admin calls per second, for the whole migration.
    max_requests_per_s: Annotated[int, Field(ge=1, le=MAX_REQUESTS_PER_S, strict=True)] | None = None


class IdCommand(_Command):
    action: Literal["resume", "rollback", "status"]
    migration_id: Annotated[str, Field(min_length=1, max_length=100)]


class ControlEvent(BaseModel):
    command: Annotated[StartCommand | IdCommand, Field(discriminator="action")]


_ERROR_TYPES: dict[type[AuthMigrationError], str] = {
    InvalidRequest: "invalid_request",
    NotFound: "not_found",
    StateConflict: "conflict",
    ConfigError: "configuration",
}


def parse_command(event: Any) -> StartCommand | IdCommand:
    """Validate a direct-invoke event; every problem becomes one InvalidRequest naming the field."""
    if not isinstance(event, dict):
        raise InvalidRequest("event must be a JSON object with an 'action'")
    try:
        return ControlEvent.model_validate({"command": event}).command
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:] if not isinstance(p, int)) or "event"
        raise InvalidRequest(f"{where}: {first['msg']}") from None


def run_command(
    command: StartCommand | IdCommand, ctx: EngineContext, *, default_dry_run: bool = False
) -> dict[str, Any]:
    if isinstance(command, StartCommand):
        request = StartRequest(
            source=command.source,
            target=command.target,
            dry_run=default_dry_run if command.dry_run is None else command.dry_run,
            batch_size=command.batch_size,
            transforms=command.transforms,
            max_requests_per_s=command.max_requests_per_s,
        )
        return {"action": "start", **asdict(start_migration(request, ctx))}
    if command.action == "resume":
        return {"action": "resume", **asdict(resume_migration(command.migration_id, ctx))}
    if command.action == "rollback":
        return {"action": "rollback", **asdict(rollback_migration(command.migration_id, ctx))}
    return {"action": "status", **migration_report(command.migration_id, ctx)}


def handle_control_event(
    event: Any, ctx: EngineContext, *, default_dry_run: bool = False, flags: FlagSource | None = None
) -> dict[str, Any]:
    """The whole MigrationControl contract: {"ok": true, ...} or {"ok": false, "error": {type, message}}.

    A start without an explicit `dry_run` is a dry run when DRY_RUN is set in the settings or in
    this invocation's flag snapshot (SSM). Expected failures (bad input, unknown id, wrong state,
    missing setup) are replies, not exceptions: a direct invoke shows a clear message, no stack trace.
    """
    try:
        command = parse_command(event)
        dry_run = default_dry_run or (flags.snapshot().dry_run if flags is not None else False)
        return {"ok": True, **run_command(command, ctx, default_dry_run=dry_run)}
    except AuthMigrationError as exc:
        kind = next((name for cls, name in _ERROR_TYPES.items() if isinstance(exc, cls)), "error")
        return {"ok": False, "error": {"type": kind, "message": str(exc)}}
