"""An in-process stand-in for Lambda's SQS event source mapping: poll, build the SQS event, call the
handler, delete what succeeded, leave the rest to SQS's visibility timeout and redrive policy.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from auth_migration_ops.local.telemetry import TelemetryFile

__all__ = [
    "DrainTimeout",
    "EventSourceMapping",
    "LocalLambdaContext",
    "PollResult",
    "Stats",
    "build_sqs_event",
]

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

#: SQS returns at most this many messages per ReceiveMessage call.
SQS_MAX_RECEIVE = 10
#: Lambda's limits for an SQS event source (standard queues).
MAX_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW_S = 300.0
_MAX_WAIT_TIME_S = 20
# After an unexpected error outside the handler (the queue endpoint went away), don't spin.
_ERROR_BACKOFF_S = 0.5


@dataclass(frozen=True)
class PollResult:
    """What one poll did: records received, how many were deleted as processed, how many left to retry."""

    received: int
    succeeded: int
    failed: int
    #: Invocations that failed as a whole: the handler raised, or returned a response Lambda can't use.
    handler_errors: int


@dataclass(frozen=True)
class Stats:
    """Totals of a run (`run_until_drained` / `run_forever`), also handed to progress callbacks."""

    batches: int
    records: int
    succeeded: int
    failed: int
    handler_errors: int
    elapsed_s: float


class DrainTimeout(TimeoutError):
    """The queue still had visible or in-flight messages when the timeout passed."""

    def __init__(self, stats: Stats, timeout_s: float) -> None:
        super().__init__(f"queue not drained after {timeout_s:.1f} s: {stats}")
        self.stats = stats


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str = "local-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    timeout_s: float = 900.0
    region: str = "us-east-1"
    account_id: str = "123456789012"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{self.aws_request_id[:8]}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --------------------------------------------------------------------------------------------------
# The event


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # Lambda renames SQS's PascalCase keys to camelCase, base64-encodes binaries (the event is JSON)
    # and always includes both list keys, empty when unused.
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    out["stringListValues"] = list(value.get("StringListValues", []))
    out["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    out["dataType"] = value["DataType"]
    return out


def build_sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda hands a function for `messages` (as boto3's ReceiveMessage returns them).

    Pure: no I/O. The result is plain JSON data, like the event a real invocation deserialises.
    """
    records = []
    for message in messages:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _lambda_message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def failed_item_ids(response: Any, message_ids: Sequence[str]) -> set[str] | None:
    """The message ids a partial batch response reports as failed; None when the whole batch failed.

    Follows Lambda's documented rules: no response, an empty response, or an empty/null
    `batchItemFailures` is full success; anything malformed, or an itemIdentifier that is empty,
    missing, or not a message of this batch, fails the whole batch.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    known = set(message_ids)
    failed: set[str] = set()
    for item in failures:
        if not isinstance(item, dict):
            return None
        identifier = item.get("itemIdentifier")
        if not isinstance(identifier, str) or identifier not in known:
            return None
        failed.add(identifier)
    return failed


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return parts[3]


# --------------------------------------------------------------------------------------------------
# Receiving

# moto's ReceiveMessage checks visibility, marks messages received and moves poison messages to the DLQ
# without a lock. Seen with 6 threads: two receives moving the same message to the DLQ, the second
# answering 500 (list.remove in moto). Real SQS has no such race; serialising only the receive call of
# pollers sharing a queue URL in this process keeps local runs honest, while handlers still run in parallel.
_receive_locks: dict[str, threading.Lock] = {}
_receive_locks_guard = threading.Lock()


def _receive_lock(queue_url: str) -> threading.Lock:
    with _receive_locks_guard:
        return _receive_locks.setdefault(queue_url, threading.Lock())


class _Totals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.batches = self.records = self.succeeded = self.failed = self.handler_errors = 0

    def add(self, result: PollResult) -> None:
        with self._lock:
            self.batches += 1
            self.records += result.received
            self.succeeded += result.succeeded
            self.failed += result.failed
            self.handler_errors += result.handler_errors

    def snapshot(self) -> Stats:
        with self._lock:
            return Stats(
                batches=self.batches,
                records=self.records,
                succeeded=self.succeeded,
                failed=self.failed,
                handler_errors=self.handler_errors,
                elapsed_s=time.monotonic() - self._started,
            )


class EventSourceMapping:
    """Feeds `handler` from an SQS queue the way Lambda's event source mapping does.

    - Receives up to `batch_size` messages: one ReceiveMessage returns at most 10, so larger batches
      keep receiving until full or `max_batching_window_s` has passed since the first message (with no
      window: while the queue keeps answering full receives). A positive window also makes small
      batches wait to fill, as on AWS.
    - Calls `handler(event, context)` with the Lambda SQS event. With `report_batch_item_failures`, a
      `{"batchItemFailures": [{"itemIdentifier": id}]}` reply deletes every other message and leaves
      the listed ones to reappear after their visibility timeout; a malformed reply or an unknown or
      empty identifier fails the whole batch. If the handler raises, nothing is deleted.
    - Never moves messages to the DLQ itself: the queue's redrive policy does that after
      maxReceiveCount receives.
    - `concurrency` threads poll in parallel, like concurrent instances of the function; the handler
      must be safe to call from several threads at once.
    - With `telemetry`, each invocation runs inside `telemetry.capture()`: what the handler prints and
      this mapping's own log about that invocation (a handler that raised) go to the file, as both go
      to the function's log on AWS, instead of this process's terminal.
    """

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        max_batching_window_s: float = 0.0,
        concurrency: int = 1,
        report_batch_item_failures: bool = True,
        wait_time_s: int = 1,
        context_factory: Callable[[], Any] | None = None,
        telemetry: TelemetryFile | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_SIZE}")
        if not 0 <= max_batching_window_s <= MAX_BATCHING_WINDOW_S:
            raise ValueError(f"max_batching_window_s must be 0..{MAX_BATCHING_WINDOW_S}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0 <= wait_time_s <= _MAX_WAIT_TIME_S:
            raise ValueError(f"wait_time_s must be 0..{_MAX_WAIT_TIME_S}")
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = _region_of(queue_arn)
        self._handler = handler
        self.batch_size = batch_size
        self.max_batching_window_s = max_batching_window_s
        self.concurrency = concurrency
        self.report_batch_item_failures = report_batch_item_failures
        self.wait_time_s = wait_time_s
        self._context_factory: Callable[[], Any] = context_factory or (lambda: LocalLambdaContext(region=self.region))
        self._receive_lock = _receive_lock(queue_url)
        self._telemetry = telemetry

    # ---- one poll ------------------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        """Receive one batch (long-polling up to `wait_time_s`), invoke the handler, settle the batch."""
        messages = self._receive_batch()
        if not messages:
            return PollResult(received=0, succeeded=0, failed=0, handler_errors=0)
        captured: AbstractContextManager[None] = (
            self._telemetry.capture() if self._telemetry is not None else nullcontext()
        )
        with captured:
            return self._invoke(messages)

    def _receive(self, max_messages: int, wait_s: int) -> list[dict[str, Any]]:
        with self._receive_lock:
            reply = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_s,
                # MessageSystemAttributeNames is the current name of the deprecated AttributeNames.
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        return [dict(m) for m in reply.get("Messages", [])]

    def _receive_batch(self) -> list[dict[str, Any]]:
        first = self._receive(min(SQS_MAX_RECEIVE, self.batch_size), self.wait_time_s)
        if not first:
            return []
        # Keyed by id: if gathering outlasts a visibility timeout the same message can come back; the
        # newest receipt handle is the one that can still delete it.
        batch: dict[str, dict[str, Any]] = {m["MessageId"]: m for m in first}
        window_ends = time.monotonic() + self.max_batching_window_s
        last_was_full = len(first) == SQS_MAX_RECEIVE
        while len(batch) < self.batch_size:
            remaining = window_ends - time.monotonic()
            if remaining <= 0 and not last_was_full:
                break
            if remaining <= 0:
                wait = 0
            else:
                wait = min(_MAX_WAIT_TIME_S, int(remaining))
            want = min(SQS_MAX_RECEIVE, self.batch_size - len(batch))
            more = self._receive(want, wait)
            last_was_full = len(more) == want
            if not more and wait == 0 and remaining > 0:
                # Less than a second of window left: WaitTimeSeconds is whole seconds, so nap instead.
                time.sleep(min(remaining, 0.05))
            for m in more:
                batch[m["MessageId"]] = m
        return list(batch.values())

    def _invoke(self, messages: list[dict[str, Any]]) -> PollResult:
        n = len(messages)
        event = build_sqs_event(messages, self.queue_arn, self.region)
        try:
            response = self._handler(event, self._context_factory())
            # Lambda serialises the reply; one that can't be is an invocation error, not a success.
            response = json.loads(json.dumps(response))
        except Exception:
            logger.exception("handler failed; the whole batch of %d returns after its visibility timeout", n)
            return PollResult(received=n, succeeded=0, failed=n, handler_errors=1)

        if self.report_batch_item_failures:
            failed = failed_item_ids(response, [m["MessageId"] for m in messages])
            if failed is None:
                logger.error("invalid batchItemFailures reply %r; the whole batch of %d fails", response, n)
                return PollResult(received=n, succeeded=0, failed=n, handler_errors=1)
        else:
            failed = set()

        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete(done)
        return PollResult(received=n, succeeded=len(done), failed=n - len(done), handler_errors=0)

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(messages), SQS_MAX_RECEIVE):
            chunk = messages[start : start + SQS_MAX_RECEIVE]
            reply = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in reply.get("Failed", []):
                # As on AWS: the message was processed but will be delivered again; handlers are idempotent.
                logger.warning("delete failed for %s: %s", chunk[int(failure["Id"])]["MessageId"], failure)

    # ---- running ---------------------------------------------------------------------------------

    def _worker(self, stop: threading.Event, totals: _Totals) -> None:
        while not stop.is_set():
            try:
                result = self.poll_once()
            except Exception:
                logger.exception("polling %s failed", self.queue_url)
                stop.wait(_ERROR_BACKOFF_S)
                continue
            if result.received:
                totals.add(result)

    def _start_workers(self, stop: threading.Event, totals: _Totals) -> list[threading.Thread]:
        name = self.queue_arn.rsplit(":", 1)[-1]
        threads = [
            threading.Thread(target=self._worker, args=(stop, totals), name=f"esm-{name}-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def queue_is_empty(self) -> bool:
        """True when the queue has no visible, in-flight or delayed messages."""
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return all(int(v) == 0 for v in attrs.values())

    def run_until_drained(
        self,
        *,
        timeout_s: float,
        idle_polls: int = 2,
        on_progress: Callable[[Stats], None] | None = None,
        check_interval_s: float = 0.2,
    ) -> Stats:
        """Poll with `concurrency` workers until the queue is empty for `idle_polls` checks in a row.

        Empty means no visible, no in-flight and no delayed messages, so a batch a worker is still
        processing, or a failed message waiting out its visibility timeout, keeps the run going.

        Raises:
            DrainTimeout: (a TimeoutError) the queue wasn't drained within `timeout_s`; has `.stats`.
        """
        if idle_polls < 1:
            raise ValueError("idle_polls must be at least 1")
        stop = threading.Event()
        totals = _Totals()
        deadline = time.monotonic() + timeout_s
        threads = self._start_workers(stop, totals)
        drained = False
        try:
            idle = 0
            while time.monotonic() < deadline:
                idle = idle + 1 if self.queue_is_empty() else 0
                if on_progress is not None:
                    on_progress(totals.snapshot())
                if idle >= idle_polls:
                    drained = True
                    break
                stop.wait(check_interval_s)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        stats = totals.snapshot()
        if not drained:
            raise DrainTimeout(stats, timeout_s)
        return stats

    def run_forever(self, stop: threading.Event) -> Stats:
        """Poll with `concurrency` workers until `stop` is set (within `wait_time_s`); returns the totals."""
        totals = _Totals()
        threads = self._start_workers(stop, totals)
        try:
            stop.wait()
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        return totals.snapshot()
