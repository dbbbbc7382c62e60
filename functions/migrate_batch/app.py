"""MigrateBatch: SQS trigger; each record is one keyset batch; failed records are reported, not raised."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.batch_worker import handle_sqs_event
from auth_migration.engine import EngineContext
from auth_migration.observability import logger, metrics, tracer
from auth_migration.runtime import engine_context
from auth_migration.sentry import init_sentry
from auth_migration.settings import load_settings

_settings = load_settings(os.environ)
init_sentry(_settings)  # only with a DSN: sentry_sdk is imported then, never otherwise
_ctx: EngineContext = engine_context(_settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_sqs_event(event, context, _ctx)
