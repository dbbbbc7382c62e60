"""Admin: GET/PUT /admin/rollout and GET /admin/migrations/{id} through API Gateway (AWS_IAM)."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.admin.api import build_admin_resolver, handle_admin_event, log_audit_failure
from auth_migration.admin.service import AdminService
from auth_migration.observability import logger, metrics, tracer
from auth_migration.rollout.store import SsmFlagStore
from auth_migration.runtime import connections
from auth_migration.sentry import init_sentry
from auth_migration.settings import load_settings

_settings = load_settings(os.environ)
init_sentry(_settings)  # only with a DSN: sentry_sdk is imported then, never otherwise
_service = AdminService(
    SsmFlagStore(_settings.flag_prefix, boto3.client("ssm")),
    connections(_settings),
    on_audit_failure=log_audit_failure,
)
app = build_admin_resolver(lambda: _service, stage=_settings.stage)


# The event is never logged (log_event stays off): a whitelist change carries emails.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_admin_event(event, context, app)
