"""The local event source mapping against a real moto server: delivery, partial failures, redrive, SSM."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from auth_migration_ops.local.aws import LocalAws, QueuePair, create_queue_with_dlq, put_parameters
from auth_migration_ops.local.sqs_poller import DrainTimeout, EventSourceMapping, Stats

MakeQueue = Callable[..., QueuePair]
Handler = Callable[[dict[str, Any], Any], Any]


# ---- builders ---------------------------------------------------------------------------------------


def send(local_aws: LocalAws, queue: QueuePair, bodies: Sequence[str]) -> None:
    sqs = local_aws.client("sqs")
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        sqs.send_message_batch(
            QueueUrl=queue.url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        )


class Recorder:
    """A handler that records every delivery and fails what `fail(body, receive_count)` says."""

    def __init__(
        self,
        fail: Callable[[str, int], bool] = lambda _body, _count: False,
        *,
        raise_on_call: set[int] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self._fail = fail
        self._raise_on_call = raise_on_call or set()
        self._delay_s = delay_s
        self._lock = threading.Lock()
        self.deliveries: list[tuple[str, int]] = []
        self.batches: list[list[str]] = []
        self.running = 0
        self.max_running = 0

    def __call__(self, event: dict[str, Any], _context: Any) -> dict[str, Any]:
        records = event["Records"]
        with self._lock:
            call = len(self.batches)
            self.batches.append([r["body"] for r in records])
            self.deliveries += [(r["body"], int(r["attributes"]["ApproximateReceiveCount"])) for r in records]
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(self._delay_s)
            if call in self._raise_on_call:
                raise RuntimeError("simulated crash mid-batch")
            failed = [r["messageId"] for r in records if self._fail(r["body"], self.receive_count(r))]
            return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
        finally:
            with self._lock:
                self.running -= 1

    @staticmethod
    def receive_count(record: dict[str, Any]) -> int:
        return int(record["attributes"]["ApproximateReceiveCount"])

    def times_delivered(self) -> Counter[str]:
        return Counter(body for body, _ in self.deliveries)


def esm(local_aws: LocalAws, queue: QueuePair, handler: Handler, **options: Any) -> EventSourceMapping:
    return EventSourceMapping(local_aws.client("sqs"), queue.url, queue.arn, handler, **options)


def depth(local_aws: LocalAws, url: str) -> int:
    attrs = local_aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


# ---- delivery -----------------------------------------------------------------------------------------


def test_every_message_is_processed_exactly_once_by_two_concurrent_pollers(local_aws, sqs_queue):
    queue = sqs_queue()
    bodies = [f"user-batch-{i}" for i in range(60)]
    send(local_aws, queue, bodies)
    handler = Recorder(delay_s=0.05)

    stats = esm(local_aws, queue, handler, batch_size=5, concurrency=2).run_until_drained(timeout_s=30)

    assert handler.times_delivered() == Counter(bodies)
    assert handler.max_running == 2
    assert (stats.records, stats.succeeded, stats.failed, stats.handler_errors) == (60, 60, 0, 0)
    assert depth(local_aws, queue.url) == 0
    assert depth(local_aws, queue.dlq_url) == 0


def test_batch_size_caps_every_invocation(local_aws, sqs_queue):
    queue = sqs_queue()
    send(local_aws, queue, [f"m{i}" for i in range(25)])
    handler = Recorder()

    stats = esm(local_aws, queue, handler, batch_size=4).run_until_drained(timeout_s=30)

    assert max(len(b) for b in handler.batches) == 4
    assert sum(len(b) for b in handler.batches) == 25
    assert stats.batches == len(handler.batches)


def test_a_batch_size_above_ten_gathers_several_receives_within_the_window(local_aws, sqs_queue):
    queue = sqs_queue()
    send(local_aws, queue, [f"m{i}" for i in range(25)])
    handler = Recorder()

    esm(local_aws, queue, handler, batch_size=25, max_batching_window_s=1).run_until_drained(timeout_s=30)

    assert [len(b) for b in handler.batches] == [25]


def test_the_handler_gets_lambdas_sqs_event_for_the_queue(local_aws, sqs_queue):
    queue = sqs_queue()
    local_aws.client("sqs").send_message(
        QueueUrl=queue.url,
        MessageBody='{"batch": 1}',
        MessageAttributes={"stage": {"DataType": "String", "StringValue": "dev"}},
    )
    events: list[dict[str, Any]] = []

    esm(local_aws, queue, lambda event, _ctx: events.append(event)).run_until_drained(timeout_s=30)

    (record,) = events[0]["Records"]
    assert record["body"] == '{"batch": 1}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert set(record["attributes"]) >= {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}
    assert record["messageAttributes"]["stage"] == {
        "stringValue": "dev",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }


def test_the_context_reports_remaining_time_like_lambdas(local_aws, sqs_queue):
    queue = sqs_queue()
    send(local_aws, queue, ["x"])
    remaining: list[int] = []

    esm(local_aws, queue, lambda _event, ctx: remaining.append(ctx.get_remaining_time_in_millis())).run_until_drained(
        timeout_s=30
    )

    assert 0 < remaining[0] <= 900_000


def test_an_empty_queue_polls_nothing(local_aws, sqs_queue):
    queue = sqs_queue()
    handler = Recorder()

    result = esm(local_aws, queue, handler, wait_time_s=0).poll_once()

    assert (result.received, result.succeeded, result.failed, result.handler_errors) == (0, 0, 0, 0)
    assert handler.batches == []


# ---- failures -----------------------------------------------------------------------------------------


def test_an_item_reported_failed_comes_back_alone_and_the_others_are_deleted(local_aws, sqs_queue):
    queue = sqs_queue(max_receive_count=3, visibility_timeout_s=1)
    send(local_aws, queue, ["a", "b", "c"])
    handler = Recorder(fail=lambda body, count: body == "b" and count == 1)

    stats = esm(local_aws, queue, handler).run_until_drained(timeout_s=30)

    assert sorted(handler.deliveries) == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    assert handler.batches[-1] == ["b"]
    assert (stats.records, stats.succeeded, stats.failed) == (4, 3, 1)
    assert depth(local_aws, queue.dlq_url) == 0


def test_an_item_failing_every_time_goes_to_the_dlq_after_max_receives(local_aws, sqs_queue):
    queue = sqs_queue(max_receive_count=2, visibility_timeout_s=1)
    send(local_aws, queue, ["a", "poison", "c"])
    handler = Recorder(fail=lambda body, _count: body == "poison")

    esm(local_aws, queue, handler).run_until_drained(timeout_s=30)

    assert handler.times_delivered() == Counter({"a": 1, "poison": 2, "c": 1})
    dead = local_aws.client("sqs").receive_message(QueueUrl=queue.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in dead] == ["poison"]
    assert depth(local_aws, queue.url) == 0


def test_a_raising_handler_gets_the_whole_batch_again(local_aws, sqs_queue):
    queue = sqs_queue(max_receive_count=3, visibility_timeout_s=1)
    send(local_aws, queue, ["a", "b", "c"])
    handler = Recorder(raise_on_call={0})

    stats = esm(local_aws, queue, handler, batch_size=10).run_until_drained(timeout_s=30)

    assert [sorted(b) for b in handler.batches] == [["a", "b", "c"], ["a", "b", "c"]]
    assert sorted(count for _, count in handler.deliveries[3:]) == [2, 2, 2]
    assert (stats.handler_errors, stats.succeeded, stats.failed) == (1, 3, 3)


def test_an_unknown_item_identifier_fails_the_whole_batch(local_aws, sqs_queue):
    queue = sqs_queue(max_receive_count=3, visibility_timeout_s=1)
    send(local_aws, queue, ["a", "b"])
    calls: list[int] = []

    def handler(event: dict[str, Any], _ctx: Any) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]}
        return {"batchItemFailures": []}

    stats = esm(local_aws, queue, handler).run_until_drained(timeout_s=30)

    assert calls == [2, 2]
    assert (stats.handler_errors, stats.succeeded, stats.failed) == (1, 2, 2)


def test_without_report_batch_item_failures_a_reply_is_ignored(local_aws, sqs_queue):
    queue = sqs_queue()
    send(local_aws, queue, ["a", "b"])
    handler = Recorder(fail=lambda _body, _count: True)

    stats = esm(local_aws, queue, handler, report_batch_item_failures=False).run_until_drained(timeout_s=30)

    assert handler.times_delivered() == Counter({"a": 1, "b": 1})
    assert stats.succeeded == 2


def test_a_queue_that_never_drains_times_out_with_the_totals_so_far(local_aws, sqs_queue):
    queue = sqs_queue(max_receive_count=100, visibility_timeout_s=1)
    send(local_aws, queue, ["stuck"])
    progress: list[Stats] = []

    with pytest.raises(DrainTimeout) as raised:
        esm(local_aws, queue, Recorder(fail=lambda _b, _c: True)).run_until_drained(
            timeout_s=1.5, on_progress=progress.append
        )

    assert isinstance(raised.value, TimeoutError)
    assert raised.value.stats.failed >= 1
    assert progress


def test_run_forever_stops_when_asked(local_aws, sqs_queue):
    queue = sqs_queue()
    send(local_aws, queue, ["a", "b", "c"])
    handler = Recorder()
    stop = threading.Event()
    mapping = esm(local_aws, queue, handler, concurrency=2)
    result: list[Stats] = []
    runner = threading.Thread(target=lambda: result.append(mapping.run_forever(stop)))

    runner.start()
    deadline = time.monotonic() + 10
    while depth(local_aws, queue.url) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    runner.join(timeout=5)

    assert not runner.is_alive()
    assert result[0].succeeded == 3


# ---- queues and parameters ----------------------------------------------------------------------------


def test_creating_a_queue_pair_again_returns_the_same_queues(local_aws):
    sqs = local_aws.client("sqs")

    first = create_queue_with_dlq(sqs, "idempotent-q", max_receive_count=4, visibility_timeout_s=7)
    again = create_queue_with_dlq(sqs, "idempotent-q", max_receive_count=4, visibility_timeout_s=7)

    assert again == first
    attrs = sqs.get_queue_attributes(QueueUrl=first.url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "7"
    assert '"deadLetterTargetArn": "' + first.dlq_arn + '"' in attrs["RedrivePolicy"]


def test_parameters_round_trip_as_string_and_secure_string(local_aws):
    ssm = local_aws.client("ssm")
    prefix = "/auth-migration/test-roundtrip"

    put_parameters(
        ssm,
        prefix,
        {"MIGRATION_MODE": "dual_write", "DATABASE_URL": "postgresql://u:pw@db/app"},
        secure={"DATABASE_URL"},
    )
    put_parameters(ssm, prefix + "/", {"MIGRATION_MODE": "better_auth_only"})

    params = ssm.get_parameters_by_path(Path=prefix, WithDecryption=True)["Parameters"]
    assert {p["Name"]: (p["Type"], p["Value"]) for p in params} == {
        f"{prefix}/MIGRATION_MODE": ("String", "better_auth_only"),
        f"{prefix}/DATABASE_URL": ("SecureString", "postgresql://u:pw@db/app"),
    }
    hidden = ssm.get_parameter(Name=f"{prefix}/DATABASE_URL", WithDecryption=False)["Parameter"]["Value"]
    assert hidden != "postgresql://u:pw@db/app"


def test_a_secure_name_missing_from_the_values_is_refused(local_aws):
    with pytest.raises(ValueError, match="DATABSE_URL"):
        put_parameters(local_aws.client("ssm"), "/p", {"DATABASE_URL": "x"}, secure={"DATABSE_URL"})


def test_attach_talks_to_a_running_server_and_leaves_it_running(local_aws):
    attached = LocalAws.attach(local_aws.endpoint_url)

    attached.stop()

    assert not attached.owns_server
    assert attached.env()["AWS_ENDPOINT_URL"] == local_aws.endpoint_url
    assert local_aws.client("sqs").list_queues()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_the_fast_sqs_clock_reads_the_same_instant_as_motos_own(local_aws):
    import importlib

    import moto.core.utils

    sqs_models: Any = importlib.import_module("moto.sqs.models")

    assert local_aws.owns_server
    assert sqs_models.unix_time() == pytest.approx(moto.core.utils.unix_time(), abs=0.05)
    assert sqs_models.unix_time_millis() == pytest.approx(moto.core.utils.unix_time_millis(), abs=50)
