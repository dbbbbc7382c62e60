"""MigrationControl: direct invoke with {"action": "start" | "resume" | "rollback" | "status", ...}."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.control import handle_control_event
from auth_migration.engine import EngineContext
from auth_migration.observability import logger, metrics, tracer
from auth_migration.runtime import engine_context, flag_source
from auth_migration.sentry import init_sentry
from auth_migration.settings import load_settings

_settings = load_settings(os.environ)
init_sentry(_settings)  # only with a DSN: sentry_sdk is imported then, never otherwise
_ctx: EngineContext = engine_context(_settings)
_flags = flag_source(_settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_control_event(event, _ctx, default_dry_run=_settings.dry_run, flags=_flags)
