"""The batch queue: where planned batches go (SQS in AWS and in the local moto run, a list in unit tests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from auth_migration.exceptions import TransientError
from auth_migration.models import BatchMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_SQS_MAX_ENTRIES = 10


class BatchQueue(Protocol):
    def send(self, messages: Sequence[BatchMessage]) -> None:
        """Deliver every message at least once, or raise TransientError."""


class SqsBatchQueue:
    def __init__(self, queue_url: str, sqs_client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs_client

    @property
    def sqs(self) -> SQSClient:
        if self._sqs is None:
            import boto3  # lazily: the batch function never sends, and boto3 costs ~0.3 s of cold start

            self._sqs = boto3.client("sqs")
        return self._sqs

    def send(self, messages: Sequence[BatchMessage]) -> None:
        for start in range(0, len(messages), _SQS_MAX_ENTRIES):
            chunk = messages[start : start + _SQS_MAX_ENTRIES]
            entries: list[Any] = [{"Id": str(i), "MessageBody": json.dumps(m.to_body())} for i, m in enumerate(chunk)]
            # SendMessageBatch can fail per entry (throttling); resend only those, a few times.
            for _ in range(4):
                reply = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                failed_ids = {f["Id"] for f in reply.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed_ids]
                if not entries:
                    break
            if entries:
                raise TransientError(f"SQS refused {len(entries)} batch message(s) after retries")


class ListQueue:
    """Collects messages in memory: unit tests and callers that run batches inline."""

    def __init__(self) -> None:
        self.messages: list[BatchMessage] = []

    def send(self, messages: Sequence[BatchMessage]) -> None:
        self.messages.extend(messages)
