"""Local AWS for development and tests: a moto server on loopback, SQS queues with a DLQ, SSM parameters.

Nothing here runs in Lambda; it stands in for the account the SAM template would deploy into.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_ssm import SSMClient

__all__ = [
    "DEFAULT_REGION",
    "LocalAws",
    "QueuePair",
    "create_queue_with_dlq",
    "put_parameters",
]

DEFAULT_REGION = "us-east-1"

# moto accepts any credentials; real-looking dummies keep botocore from searching the machine for some.
_DUMMY_KEY_ID = "testing"
_DUMMY_SECRET = "testing"  # noqa: S105 - not a secret: moto ignores credentials

# SQS's longest retention, so a message parked in a DLQ outlives any local run that produced it.
_DLQ_RETENTION_S = 14 * 24 * 3600


def _speed_up_moto_sqs_clock() -> None:
    """Give moto's SQS model a cheap "now"; same values, a fraction of the cost.

    moto reads the clock through datetime arithmetic (~5 us a call) once or twice per stored message on
    every send, receive and delete, so each call costs O(queue depth). Measured (2 cores): enqueueing
    and draining 1,000 messages took 10.9 s + 45.9 s with moto's clock, 1.1 s + 4.6 s with this one.
    time.time() is the same instant (moto's argument-less unix_time() is UTC now as epoch seconds);
    calls with an explicit datetime keep moto's code.
    """
    import importlib

    # Any: we replace module globals moto doesn't export as API; the module is patched, not subclassed.
    sqs_models: Any = importlib.import_module("moto.sqs.models")
    if getattr(sqs_models, "_auth_migration_fast_clock", False):
        return
    original_unix_time = sqs_models.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else float(original_unix_time(dt))

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    sqs_models.unix_time = unix_time
    sqs_models.unix_time_millis = unix_time_millis
    sqs_models._auth_migration_fast_clock = True


class LocalAws:
    """A moto server on 127.0.0.1 (started here, or an existing one attached to) plus clients bound to it.

    `LocalAws()` starts a server on a free port and owns it: `stop()` or leaving the `with` block ends it.
    `LocalAws.attach(url)` talks to a server someone else runs (a worker subprocess given the parent's
    endpoint) and never stops it.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        port: int = 0,
        region: str = DEFAULT_REGION,
        quiet: bool = True,
        fast_sqs_clock: bool = True,
    ) -> None:
        self.region = region
        self._server: Any = None
        if endpoint_url is None:
            # Imported here so attaching (a worker process) doesn't pay for moto's server stack.
            from moto.server import ThreadedMotoServer

            if quiet:
                # werkzeug logs every request at INFO to stderr; a migration run makes thousands.
                logging.getLogger("werkzeug").setLevel(logging.WARNING)
            if fast_sqs_clock:
                _speed_up_moto_sqs_clock()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=not quiet)
            server.start()
            host, bound_port = server.get_host_and_port()
            self._server = server
            endpoint_url = f"http://{host}:{bound_port}"
        self.endpoint_url: str = endpoint_url
        # One session per instance: boto3's default session is not safe to build clients from in threads.
        self._session = boto3.session.Session(
            aws_access_key_id=_DUMMY_KEY_ID,
            aws_secret_access_key=_DUMMY_SECRET,
            region_name=region,
        )
        self._session_lock = threading.Lock()

    @classmethod
    def attach(cls, endpoint_url: str, *, region: str = DEFAULT_REGION) -> LocalAws:
        """Use a moto server that is already running at `endpoint_url`; `stop()` leaves it running."""
        return cls(endpoint_url, region=region)

    @property
    def owns_server(self) -> bool:
        return self._server is not None

    def env(self) -> dict[str, str]:
        """Environment that points boto3 and Powertools (in this process or a child) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": _DUMMY_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": _DUMMY_SECRET,
        }

    @overload
    def client(self, service_name: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service_name: Literal["ssm"]) -> SSMClient: ...
    @overload
    def client(self, service_name: str) -> Any: ...
    def client(self, service_name: str) -> Any:
        """A boto3 client for `service_name` bound to this server (clients are thread-safe once built)."""
        with self._session_lock:
            return self._session.client(
                service_name,  # type: ignore[call-overload]
                endpoint_url=self.endpoint_url,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
            )

    def stop(self) -> None:
        """Stop the server if this instance started it; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> LocalAws:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalAws(endpoint_url={self.endpoint_url!r}, owns_server={self.owns_server})"


@dataclass(frozen=True)
class QueuePair:
    """A work queue and the dead-letter queue its redrive policy sends poison messages to."""

    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


def _dlq_name(name: str) -> str:
    # A FIFO queue's DLQ must itself be FIFO, and FIFO names must end in ".fifo".
    if name.endswith(".fifo"):
        return f"{name.removesuffix('.fifo')}-dlq.fifo"
    return f"{name}-dlq"


def _queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def create_queue_with_dlq(
    sqs: SQSClient,
    name: str,
    *,
    max_receive_count: int,
    visibility_timeout_s: int,
) -> QueuePair:
    """Create queue `name` and `<name>-dlq`, wired by a redrive policy after `max_receive_count` receives.

    Idempotent: calling again with the same arguments returns the same queues (SQS answers
    QueueAlreadyExists only when the attributes differ).
    """
    if max_receive_count < 1:
        raise ValueError("max_receive_count must be at least 1")
    fifo = name.endswith(".fifo")
    fifo_attrs: dict[QueueAttributeNameType, str] = {"FifoQueue": "true"} if fifo else {}

    dlq_url = sqs.create_queue(
        QueueName=_dlq_name(name),
        Attributes={"MessageRetentionPeriod": str(_DLQ_RETENTION_S), **fifo_attrs},
    )["QueueUrl"]
    dlq_arn = _queue_arn(sqs, dlq_url)
    # sort_keys keeps the policy text byte-identical across calls, which is what makes re-create idempotent.
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}, sort_keys=True)
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": redrive,
            **fifo_attrs,
        },
    )["QueueUrl"]
    return QueuePair(url=url, arn=_queue_arn(sqs, url), dlq_url=dlq_url, dlq_arn=dlq_arn)


def put_parameters(
    ssm: SSMClient,
    prefix: str,
    values: Mapping[str, str],
    *,
    secure: Collection[str] = (),
) -> None:
    """Write `values` as `<prefix>/<name>` parameters, overwriting; names in `secure` become SecureString."""
    unknown = set(secure) - set(values)
    if unknown:
        # A typo here would silently store a secret as a plain String; refuse instead.
        raise ValueError(f"secure names not in values: {sorted(unknown)}")
    base = prefix.rstrip("/")
    for key, value in values.items():
        ssm.put_parameter(
            Name=f"{base}/{key}",
            Value=value,
            Type="SecureString" if key in secure else "String",
            Overwrite=True,
        )
