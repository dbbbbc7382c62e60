"""Login: POST /auth/login through API Gateway; primary first, fallback, lazy migration on Supabase success."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from auth_migration.dual_write.api import handle_api_event
from auth_migration.dual_write.runtime import api_app
from auth_migration.observability import logger, metrics, tracer
from auth_migration.snapstart import ApiRuntime

# Settings (SSM), Sentry (only with a DSN: sentry_sdk is imported then, never otherwise) and the resolver, once
# per container. Under SnapStart this runs when a version is published; each restore re-reads the settings.
runtime = ApiRuntime(os.environ, api_app)


# The event is never logged (log_event stays off): its body holds a password.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_api_event(event, context, runtime.app)
