"""Reconcile: SQS (one dual-write gap per record, partial failures reported) and a scheduled sweep."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.dual_write.reconcile_worker import handle_reconcile_event
from auth_migration.dual_write.runtime import SqsRepairQueue, reconciler
from auth_migration.observability import logger, metrics, tracer
from auth_migration.sentry import init_sentry
from auth_migration.settings import load_settings

_settings = load_settings(os.environ)
init_sentry(_settings)  # only with a DSN: sentry_sdk is imported then, never otherwise
_reconciler = reconciler(_settings)
_queue = SqsRepairQueue(_settings.reconcile_queue_url) if _settings.reconcile_queue_url else None


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_reconcile_event(event, context, _reconciler, _queue)
