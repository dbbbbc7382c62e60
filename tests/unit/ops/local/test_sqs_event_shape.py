"""The local event source mapping hands handlers the SQS event Lambda would, and reads replies by Lambda's rules."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.parser.models import SqsModel

from auth_migration_ops.local.sqs_poller import build_sqs_event, failed_item_ids

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:migrate-batch"


def received_message(**overrides: Any) -> dict[str, Any]:
    """A message as boto3's ReceiveMessage returns it with All system and message attributes."""
    message: dict[str, Any] = {
        "MessageId": "5d2a3b1c-0000-4000-8000-000000000001",
        "ReceiptHandle": "AQEB-handle-1",
        "MD5OfBody": "8f8ec3b1c3e9fb1a1ed0a0bf6b6e2d59",
        "Body": '{"migration_id": "m-1", "batch": 7}',
        "Attributes": {
            "SenderId": "AIDAIT2UOQQY3AUEKVGXU",
            "SentTimestamp": "1795612417749",
            "ApproximateReceiveCount": "2",
            "ApproximateFirstReceiveTimestamp": "1795612417753",
        },
        "MD5OfMessageAttributes": "b5df0a81002ed4a88fd753d9c7b7f3e7",
        "MessageAttributes": {
            "stage": {"StringValue": "dev", "DataType": "String"},
            "attempt": {"StringValue": "3", "DataType": "Number.int"},
            "blob": {"BinaryValue": b"\x00\x01\xff", "DataType": "Binary"},
        },
    }
    message.update(overrides)
    return message


def test_a_record_carries_lambdas_field_names_and_the_queue_it_came_from() -> None:
    event = build_sqs_event([received_message()], QUEUE_ARN, "us-east-1")

    assert event == {
        "Records": [
            {
                "messageId": "5d2a3b1c-0000-4000-8000-000000000001",
                "receiptHandle": "AQEB-handle-1",
                "body": '{"migration_id": "m-1", "batch": 7}',
                "attributes": {
                    "SenderId": "AIDAIT2UOQQY3AUEKVGXU",
                    "SentTimestamp": "1795612417749",
                    "ApproximateReceiveCount": "2",
                    "ApproximateFirstReceiveTimestamp": "1795612417753",
                },
                "messageAttributes": {
                    "stage": {
                        "stringValue": "dev",
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "String",
                    },
                    "attempt": {
                        "stringValue": "3",
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "Number.int",
                    },
                    "blob": {
                        "binaryValue": base64.b64encode(b"\x00\x01\xff").decode(),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "Binary",
                    },
                },
                "md5OfBody": "8f8ec3b1c3e9fb1a1ed0a0bf6b6e2d59",
                "md5OfMessageAttributes": "b5df0a81002ed4a88fd753d9c7b7f3e7",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            }
        ]
    }


def test_a_message_without_attributes_gets_empty_attribute_maps() -> None:
    bare = received_message(MessageAttributes={})
    del bare["MD5OfMessageAttributes"]

    (record,) = build_sqs_event([bare], QUEUE_ARN, "us-east-1")["Records"]

    assert record["messageAttributes"] == {}
    assert "md5OfMessageAttributes" not in record


def test_records_keep_the_order_messages_were_received_in() -> None:
    messages = [received_message(MessageId=f"id-{i}", ReceiptHandle=f"h-{i}") for i in range(3)]

    event = build_sqs_event(messages, QUEUE_ARN, "us-east-1")

    assert [r["messageId"] for r in event["Records"]] == ["id-0", "id-1", "id-2"]


def test_powertools_parser_and_data_class_accept_the_event() -> None:
    event = build_sqs_event([received_message()], QUEUE_ARN, "us-east-1")

    parsed = SqsModel.model_validate(event)
    record = next(iter(SQSEvent(event).records))

    assert parsed.Records[0].attributes.ApproximateReceiveCount == "2"
    stage, blob = record.message_attributes["stage"], record.message_attributes["blob"]
    assert stage is not None
    assert blob is not None
    assert stage.string_value == "dev"
    assert blob.binary_value == base64.b64encode(b"\x00\x01\xff").decode()
    assert record.event_source_arn == QUEUE_ARN


IDS = ["a", "b", "c"]


@pytest.mark.parametrize(
    "reply",
    [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, {"statusCode": 200}],
    ids=["null", "empty", "empty-list", "null-list", "other-keys"],
)
def test_replies_without_failures_mean_the_whole_batch_succeeded(reply: Any) -> None:
    assert failed_item_ids(reply, IDS) == set()


def test_listed_items_are_the_ones_that_failed() -> None:
    reply = {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}

    assert failed_item_ids(reply, IDS) == {"b", "c"}


@pytest.mark.parametrize(
    "reply",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": [{"messageId": "a"}]},
        {"batchItemFailures": ["a"]},
        {"batchItemFailures": "a"},
        "ok",
        ["a"],
    ],
    ids=["empty-id", "null-id", "unknown-id", "wrong-key", "bare-string-item", "not-a-list", "string", "list"],
)
def test_a_malformed_reply_fails_the_whole_batch(reply: Any) -> None:
    assert failed_item_ids(reply, IDS) is None
