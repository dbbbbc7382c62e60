"""AutoRollback: every minute (EventBridge schedule), judge Better-Auth-primary traffic and step back on a breach."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.observability import logger, metrics, tracer
from auth_migration.rollout.auto_worker import handle_schedule
from auth_migration.rollout.store import SsmFlagStore
from auth_migration.runtime import connections
from auth_migration.sentry import init_sentry
from auth_migration.settings import load_settings

_settings = load_settings(os.environ)
init_sentry(_settings)  # only with a DSN: sentry_sdk is imported then, never otherwise
_store = SsmFlagStore(_settings.flag_prefix, boto3.client("ssm"))
_conns = connections(_settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_schedule(_settings, _store, _conns)
