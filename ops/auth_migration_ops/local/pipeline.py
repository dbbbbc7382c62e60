"""The whole SQS pipeline on this machine: moto for SQS/SSM, both functions in-process from template.yaml.

MigrationControl plans and enqueues exactly as in AWS; an EventSourceMapping look-alike feeds the
MigrateBatch handler with real SQS batches, visibility timeouts, redelivery and a DLQ.

With a `telemetry` file the functions run as in AWS, metrics on and logs at INFO, and everything they
print (EMF blobs, JSON log lines, Python warnings) goes to that file, never to the operator's terminal.
Without one they are kept quiet instead (metrics off, logs at WARNING), as tests and `auth-migrate invoke`
want them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from auth_migration.flags import Flags
from auth_migration_ops.local.aws import LocalAws, QueuePair, create_queue_with_dlq, put_parameters
from auth_migration_ops.local.invoke import LocalFunction
from auth_migration_ops.local.telemetry import TelemetryFile
from auth_migration_ops.local.template import resolve_function

QUEUE_NAME = "auth-migration-local-batches"
#: The EMF namespace of local runs, apart from every deployed stage's.
METRICS_NAMESPACE = "AuthMigration/local"


@dataclass
class Progress:
    migration_id: str
    status: str
    processed: int
    errors: int
    batches_done: int
    batches_total: int
    elapsed_s: float


@dataclass
class LocalPipeline:
    """Context manager. `database_urls` maps OLD/NEW/BETTER_AUTH_DATABASE_URL (one URL may serve all).

    `telemetry`: the file the functions' output goes to (the caller opens and closes it); None keeps
    them quiet and leaves what little they print (warnings) on this process's streams.
    """

    database_urls: dict[str, str]
    stage: str = "dev"
    sqs_batch_size: int = 10
    concurrency: int = 2
    visibility_timeout_s: int = 120
    max_receive_count: int = 5
    extra_env: dict[str, str] = field(default_factory=dict)
    telemetry: TelemetryFile | None = None
    aws: LocalAws | None = None
    queue: QueuePair | None = None
    _functions: dict[str, LocalFunction] = field(default_factory=dict)

    def __enter__(self) -> LocalPipeline:
        self.aws = LocalAws()
        sqs = self.aws.client("sqs")
        # moto keeps its state per process, shared by every server started in it: a unique name keeps
        # two pipelines (or two tests) from meeting each other's queues.
        self.queue = create_queue_with_dlq(
            sqs,
            f"{QUEUE_NAME}-{uuid.uuid4().hex[:8]}",
            max_receive_count=self.max_receive_count,
            visibility_timeout_s=self.visibility_timeout_s,
        )
        put_parameters(self.aws.client("ssm"), f"/auth-migration/{self.stage}", Flags.defaults().as_parameters())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.aws is not None:
            self.aws.stop()

    @property
    def env(self) -> dict[str, str]:
        assert self.aws is not None and self.queue is not None
        return {
            **self.aws.env(),
            **self.database_urls,
            "STAGE": self.stage,
            "MIGRATION_QUEUE_URL": self.queue.url,
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            **(self._telemetry_env() if self.telemetry is not None else self._quiet_env()),
            **self.extra_env,
        }

    @staticmethod
    def _telemetry_env() -> dict[str, str]:
        # Everything goes to the telemetry file: real EMF (in a namespace of its own) and INFO logs.
        return {
            # Explicitly on: POWERTOOLS_DEV in the operator's shell would otherwise turn metrics off.
            "POWERTOOLS_METRICS_DISABLED": "false",
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # Events are never logged (an SQS event is only batch ranges, but the rule is simple).
            "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        }

    @staticmethod
    def _quiet_env() -> dict[str, str]:
        # No file to send them to: EMF metrics and JSON logs would drown the caller's output.
        return {
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }

    def function(self, name: str) -> LocalFunction:
        if name not in self._functions:
            assert self.queue is not None
            spec = resolve_function(
                name,
                parameter_overrides={"Stage": self.stage, "MaxReceiveCount": str(self.max_receive_count)},
                resource_values={"MigrationBatchQueue": self.queue.url, "MigrationBatchDLQ": self.queue.dlq_url},
            )
            self._functions[name] = LocalFunction(spec)
        return self._functions[name]

    def control(self, event: dict[str, Any]) -> dict[str, Any]:
        result = self.function("MigrationControl").invoke(event, env_overrides=self.env, telemetry=self.telemetry)
        assert isinstance(result, dict)
        return result

    def run_batches(
        self,
        migration_id: str,
        *,
        timeout_s: float = 3600,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Feed MigrateBatch until the queue is drained; report progress from the state database."""
        from auth_migration_ops.local.sqs_poller import EventSourceMapping  # the invoke path needs no poller

        assert self.aws is not None and self.queue is not None
        spec = self.function("MigrateBatch").spec
        env = self.env
        telemetry = self.telemetry
        # One warm "container" per poller thread: a Lambda instance serves one invocation at a time,
        # and its module-level connections must never be shared between concurrent batches.
        containers = threading.local()

        def handler(event: dict[str, Any], _context: Any) -> Any:
            function = getattr(containers, "function", None)
            if function is None:
                function = containers.function = LocalFunction(spec)
            return function.invoke(event, env_overrides=env, telemetry=telemetry)

        esm = EventSourceMapping(
            self.aws.client("sqs"),
            self.queue.url,
            self.queue.arn,
            handler,
            batch_size=self.sqs_batch_size,
            concurrency=self.concurrency,
            telemetry=telemetry,
        )
        started = time.monotonic()
        with psycopg.connect(self.database_urls["NEW_DATABASE_URL"], autocommit=True) as conn:
            last = [0.0]

            def snapshot(*, force: bool = False) -> Progress:
                now = time.monotonic()
                row = conn.execute(
                    """SELECT status, processed_count, error_count, batches_done, batches_total
                       FROM migration_states WHERE id = %s""",
                    (migration_id,),
                ).fetchone()
                assert row is not None
                p = Progress(migration_id, row[0], row[1], row[2], row[3], row[4], now - started)
                if on_progress and (force or now - last[0] >= 0.5):
                    last[0] = now
                    on_progress(p)
                return p

            def progress(_stats: Any) -> None:
                snapshot()

            esm.run_until_drained(timeout_s=timeout_s, on_progress=progress)
            return snapshot(force=True)

    def dlq_depth(self) -> int:
        assert self.aws is not None and self.queue is not None
        attrs = self.aws.client("sqs").get_queue_attributes(
            QueueUrl=self.queue.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])
