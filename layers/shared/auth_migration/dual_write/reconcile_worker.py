"""Reconcile's entry: SQS records (one gap each, partial failures reported) and the scheduled sweep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from auth_migration.batch_worker import SqsBatchProcessor
from auth_migration.dual_write.reconcile import Reconciler, RepairResult, open_gap_ids
from auth_migration.dual_write.service import RepairQueue
from auth_migration.exceptions import InvalidRequest
from auth_migration.observability import logger, metrics

__all__ = ["handle_reconcile_event", "sweep"]

#: A gap is re-sent when nothing touched it for this long (its message was lost or dead-lettered).
SWEEP_AFTER_S: Final = 300
#: Past this many failed repairs a gap stays open for a person (the DLQ alarm has fired by then).
SWEEP_MAX_ATTEMPTS: Final = 50
SWEEP_LIMIT: Final = 1000


def sweep(reconciler: Reconciler, queue: RepairQueue | None, *, older_than_s: int = SWEEP_AFTER_S) -> dict[str, int]:
    """Re-queue stale open gaps; with no queue configured, repair them inline."""
    conn = reconciler.conns.state
    with conn.transaction():
        ids = open_gap_ids(conn, older_than_s=older_than_s, max_attempts=SWEEP_MAX_ATTEMPTS, limit=SWEEP_LIMIT)
        # Touch them so the next sweep does not send them again while these messages are in flight.
        conn.execute("UPDATE dual_write_gaps SET updated_at = now() WHERE id = ANY(%s)", (ids,))
    repaired = 0
    for gap_id in ids:
        if queue is not None:
            queue.send({"gap_id": gap_id})
        else:
            result = reconciler.repair(gap_id)
            repaired += result.status != "already_closed"
            _count_repair(result)
    return {"requeued": len(ids) if queue is not None else 0, "repaired": repaired}


def _count_repair(result: RepairResult) -> None:
    if result.status == "repaired" and result.outcome != "nothing_created":
        # Both systems hold the user now ("nothing_created": neither does, so nothing was owed).
        metrics.add_metric(name="GapRepaired", unit=MetricUnit.Count, value=1)


def handle_reconcile_event(
    event: Mapping[str, Any], context: Any, reconciler: Reconciler, queue: RepairQueue | None
) -> dict[str, Any]:
    """An SQS event (Records) or a scheduled sweep (EventBridge Scheduler/rule, or {"action": "sweep"})."""
    if "Records" in event:
        # A batch whose every record fails is answered, not raised: see SqsBatchProcessor.
        processor = SqsBatchProcessor(failure_message="gap message failed")

        def record_handler(record: SQSRecord) -> dict[str, Any]:
            body = record.json_body
            if not isinstance(body, dict):
                raise InvalidRequest("reconcile message body must be a JSON object")
            result = reconciler.repair(reconciler.gap_id_from(body))
            logger.info(
                "gap reconciled", extra={"gap_id": result.gap_id, "status": result.status, "outcome": result.outcome}
            )
            metrics.add_metric(name=f"Gap_{result.status}", unit=MetricUnit.Count, value=1)
            _count_repair(result)
            return {"gap_id": result.gap_id, "status": result.status}

        return dict(
            process_partial_response(
                event=dict(event), record_handler=record_handler, processor=processor, context=context
            )
        )
    if event.get("action") == "sweep" or event.get("source") in ("aws.events", "aws.scheduler"):
        counts = sweep(reconciler, queue)
        logger.info("reconcile sweep", extra=counts)
        return counts
    raise InvalidRequest('expected an SQS event or {"action": "sweep"}')
