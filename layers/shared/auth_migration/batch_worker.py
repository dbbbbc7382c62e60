"""MigrateBatch: an SQS event in, a partial batch response out (Powertools BatchProcessor)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from auth_migration.engine import EngineContext, process_batch
from auth_migration.engine.batch import parse_batch_message
from auth_migration.observability import logger, metrics


def handle_sqs_event(event: dict[str, Any], context: Any, ctx: EngineContext) -> dict[str, Any]:
    """Each record is one batch; a failing record is reported alone and comes back (then the DLQ)."""
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        msg = parse_batch_message(record.json_body)
        receive_count = int(record.attributes.approximate_receive_count or 1)
        result = process_batch(msg, ctx, receive_count=receive_count)
        logger.info(
            "batch processed",
            extra={
                "migration_id": msg.migration_id,
                "batch_no": msg.batch_no,
                "status": result.status,
                "users": result.users,
                "outcomes": result.outcomes,
            },
        )
        metrics.add_metric(name="UsersProcessed", unit=MetricUnit.Count, value=result.users)
        metrics.add_metric(name="UsersMigrated", unit=MetricUnit.Count, value=result.outcomes.get("migrated", 0))
        metrics.add_metric(name="UserErrors", unit=MetricUnit.Count, value=result.errors)
        return {"batch_no": msg.batch_no, "status": result.status}

    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
