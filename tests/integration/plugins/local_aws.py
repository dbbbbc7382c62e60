"""Fixtures for local AWS: one moto server per test session, and fresh SQS queues (with DLQ) per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from auth_migration_ops.local.aws import LocalAws, QueuePair, create_queue_with_dlq


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    """A moto server on 127.0.0.1 and a free port, shared by the session (tests use unique names)."""
    with LocalAws() as aws:
        yield aws


@pytest.fixture
def local_aws_env(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Points boto3 and Powertools in this process at the moto server for one test."""
    env = local_aws.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def sqs_queue(local_aws: LocalAws) -> Iterator[Callable[..., QueuePair]]:
    """Factory: `sqs_queue(max_receive_count=3, visibility_timeout_s=1)` makes a uniquely named queue
    with its DLQ; both are deleted after the test."""
    sqs = local_aws.client("sqs")
    made: list[QueuePair] = []

    def _make(*, max_receive_count: int = 3, visibility_timeout_s: int = 1) -> QueuePair:
        pair = create_queue_with_dlq(
            sqs,
            f"t-{uuid.uuid4().hex[:12]}",
            max_receive_count=max_receive_count,
            visibility_timeout_s=visibility_timeout_s,
        )
        made.append(pair)
        return pair

    yield _make
    for pair in made:
        sqs.delete_queue(QueueUrl=pair.url)
        sqs.delete_queue(QueueUrl=pair.dlq_url)
