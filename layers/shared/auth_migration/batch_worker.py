"""MigrateBatch: an SQS event in, a partial batch response out (Powertools BatchProcessor).

`SqsBatchProcessor` is also Reconcile's: both queues report failed records the same way. Each record is a
Sentry transaction (`sentry.migration_batch`) with a span per statement group when Sentry is on."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, ExceptionInfo, process_partial_response
from aws_lambda_powertools.utilities.batch.base import FailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from auth_migration.engine import EngineContext, process_batch
from auth_migration.engine.batch import parse_batch_message
from auth_migration.exceptions import InvalidRequest
from auth_migration.models import BatchMessage
from auth_migration.observability import logger, metrics
from auth_migration.sentry import invocation_scope, migration_batch

__all__ = ["SqsBatchProcessor", "failure_reason", "handle_sqs_event"]

#: Exceptions whose text is ours or only a position (never the message body, never a database value).
_SAFE_TEXT: Final = (InvalidRequest, json.JSONDecodeError)


def failure_reason(exc: BaseException | None) -> str:
    """Why a record failed, fit for a log line: the exception type, with its text only when that text
    cannot hold the body (which may carry personal data) or a database value (a constraint's DETAIL)."""
    if exc is None:
        return "unknown"
    name = type(exc).__name__
    return f"{name}: {exc}" if isinstance(exc, _SAFE_TEXT) else name


class SqsBatchProcessor(BatchProcessor):
    """Powertools' SQS BatchProcessor, told not to raise when every record fails.

    By default a batch whose records all fail raises BatchProcessingError: the invocation errors
    with a traceback, Lambda counts an error and SQS redelivers the whole batch. A batch of poison
    messages (a foreign producer on the queue) is not a function error, so it is answered like any
    partial failure: every record in batchItemFailures, each retried alone and then dead-lettered.
    Each failure is logged once, by message id, never with its body.
    """

    def __init__(self, *, failure_message: str, failure_metric: str | None = None) -> None:
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self._failure_message = failure_message
        self._failure_metric = failure_metric

    def failure_handler(self, record: SQSRecord, exception: ExceptionInfo) -> FailureResponse:
        entry = super().failure_handler(record, exception)
        if self._failure_metric is not None:
            metrics.add_metric(name=self._failure_metric, unit=MetricUnit.Count, value=1)
        logger.warning(
            self._failure_message,
            extra={
                "message_id": record.message_id,
                "receive_count": record.attributes.approximate_receive_count,
                "reason": failure_reason(exception[1]),
            },
        )
        return entry


def handle_sqs_event(event: dict[str, Any], context: Any, ctx: EngineContext) -> dict[str, Any]:
    """Each record is one batch; a failing record is reported alone and comes back (then the DLQ)."""
    processor = SqsBatchProcessor(failure_message="batch message failed", failure_metric="BatchFailed")
    following = _following_messages(event)

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        receive_count = int(record.attributes.approximate_receive_count or 1)
        last = receive_count >= ctx.max_receive_count
        with migration_batch(receive_count=receive_count, last_receive=last, reason=failure_reason) as report:
            msg = parse_batch_message(record.json_body)
            report.identify(msg.migration_id, msg.batch_no)
            result = process_batch(
                msg, ctx, receive_count=receive_count, phase=report.phase, next_msg=following.get(record.message_id)
            )
            migrated = result.outcomes.get("migrated", 0)
            report.done(status=result.status, users=result.users, migrated=migrated, errors=result.errors)
        logger.info(
            "batch processed",
            extra={
                "migration_id": msg.migration_id,
                "batch_no": msg.batch_no,
                "status": result.status,
                "users": result.users,
                "outcomes": result.outcomes,
                "read_ahead": result.read_ahead,
            },
        )
        metrics.add_metric(name="UsersProcessed", unit=MetricUnit.Count, value=result.users)
        metrics.add_metric(name="UsersMigrated", unit=MetricUnit.Count, value=migrated)
        metrics.add_metric(name="UserErrors", unit=MetricUnit.Count, value=result.errors)
        return {"batch_no": msg.batch_no, "status": result.status}

    with invocation_scope():
        try:
            return dict(
                process_partial_response(
                    event=event, record_handler=record_handler, processor=processor, context=context
                )
            )
        finally:
            ctx.discard_prefetched()  # nothing may run on while Lambda freezes the process


def _following_messages(event: dict[str, Any]) -> dict[str, BatchMessage]:
    """messageId -> the next record's batch message, in the order the processor handles the records: each
    batch reads the next ahead while it writes. Bodies that do not parse are left out (they fail on their
    own turn, with their own error)."""
    parsed: list[tuple[str, BatchMessage | None]] = []
    for record in event.get("Records") or []:
        if not isinstance(record, dict):
            continue
        try:
            msg: BatchMessage | None = parse_batch_message(json.loads(record.get("body") or ""))
        except (InvalidRequest, ValueError, TypeError):
            msg = None
        parsed.append((str(record.get("messageId")), msg))
    return {message_id: nxt for (message_id, _msg), (_next_id, nxt) in pairwise(parsed) if nxt is not None}
