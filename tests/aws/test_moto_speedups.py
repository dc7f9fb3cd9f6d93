"""The local moto server's speed-ups (``ichido.aws.moto_speedups``) answer what moto answers:
the same queue attributes, whatever the queue's kind and messages, without scanning the
messages to read one (what made every send cost O(backlog)); and a cancelled DynamoDB
transaction leaves its tables as they were, items and stream, without copying the tables
(what made every transaction cost O(table))."""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any, Iterator

import boto3
import pytest

from ichido.aws import moto_speedups


@pytest.fixture
def backend() -> Iterator[Any]:
    """moto's SQS in this process, under an account of this test's own (a redrive policy
    finds its DLQ through moto's registry of backends)."""
    from moto.sqs.models import sqs_backends

    moto_speedups.apply()
    account = str(random.randrange(10**11, 10**12))
    yield sqs_backends[account]["us-east-1"]
    sqs_backends[account].reset()


def fill(backend: Any, queue: Any, fifo: bool) -> None:
    """Messages in every state: visible, in flight, delayed (standard queues only)."""
    for n in range(6):
        backend.send_message(queue.name, f"body {n}", group_id="g" if fifo else None,
                             deduplication_id=f"d{n}" if fifo else None,
                             delay_seconds=None if fifo or n % 3 else 60)
    backend.receive_message(queue.name, 2, 0, 30)


@pytest.mark.parametrize("attributes", [
    {},
    {"FifoQueue": "true"},
    {"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    {"KmsMasterKeyId": "alias/key", "VisibilityTimeout": "45"},
    {"Policy": json.dumps({"Version": "2012-10-17", "Statement": []})},
], ids=["standard", "fifo", "fifo-content-dedupe", "kms", "policy"])
def test_queue_attributes_are_moto_s_own(backend: Any, attributes: dict[str, str]) -> None:
    suffix = ".fifo" if attributes.get("FifoQueue") else ""
    dlq = backend.create_queue(f"dead{suffix}", **attributes)
    queue = backend.create_queue(f"events{suffix}", **attributes, RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq.queue_arn, "maxReceiveCount": 3}))
    fill(backend, queue, bool(suffix))
    for each in (queue, dlq):
        ours = each.attributes
        assert isinstance(ours, moto_speedups.QueueAttributes)
        theirs = moto_speedups.moto_queue_attributes.fget(each)
        assert dict(ours) == theirs
        assert list(ours) == list(theirs)
        assert all(ours.get(name) == value for name, value in theirs.items())
        assert ours.get("NoSuchAttribute") is None and "NoSuchAttribute" not in ours
    assert queue.attributes["ApproximateNumberOfMessagesNotVisible"] == 2
    if not suffix:
        assert queue.attributes["ApproximateNumberOfMessagesDelayed"] == 2


def test_reading_one_attribute_leaves_the_messages_alone(backend: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    queue = backend.create_queue("scanned.fifo", FifoQueue="true")
    fill(backend, queue, fifo=True)
    scans = []
    messages = type(queue).messages
    monkeypatch.setattr(type(queue), "messages", property(
        lambda q: scans.append(q.name) or messages.fget(q)))
    assert queue.attributes.get("ContentBasedDeduplication") == "false"
    backend.send_message(queue.name, "one more", group_id="g", deduplication_id="d-more")
    assert scans == []
    assert queue.attributes["ApproximateNumberOfMessages"] == 5  # 7 sent, 2 in flight
    assert scans == ["scanned.fifo"]


def test_the_clock_is_the_epoch_s(backend: Any) -> None:
    from moto.core.utils import unix_time
    from moto.sqs import models

    before = time.time()
    ours, theirs = models.unix_time(), unix_time()
    assert before - 0.5 < ours < theirs + 0.5
    assert abs(models.unix_time_millis() - 1000 * theirs) < 500


def test_a_cancelled_transaction_leaves_the_table_as_it_was(aws: str) -> None:
    """A put of a new item, an update and a delete of existing ones, then a condition that
    fails: every write is undone, the stream gets no record; the table was never copied."""
    from moto.dynamodb.models import dynamodb_backends

    client = boto3.client("dynamodb")
    name = f"speedups-{uuid.uuid4().hex[:10]}"
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    for sk in ("kept", "updated", "deleted"):
        client.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"S": sk},
                                              "n": {"N": "1"}})
    table = dynamodb_backends["123456789012"]["us-east-1"].tables[name]
    before, records = items(client, name), len(table.stream_shard.items)

    def key(sk: str) -> dict[str, Any]:
        return {"pk": {"S": "a"}, "sk": {"S": sk}}

    writes: list[dict[str, Any]] = [
        {"Put": {"TableName": name, "Item": {**key("new"), "n": {"N": "2"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"TableName": name, "Key": key("updated"),
                    "UpdateExpression": "SET n = n + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Delete": {"TableName": name, "Key": key("deleted")}}]
    with pytest.raises(client.exceptions.TransactionCanceledException) as cancelled:
        client.transact_write_items(TransactItems=[*writes, {"Put": {
            "TableName": name, "Item": {**key("kept"), "n": {"N": "3"}},
            "ConditionExpression": "attribute_not_exists(pk)"}}])
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert items(client, name) == before
    assert len(table.stream_shard.items) == records
    assert dynamodb_backends["123456789012"]["us-east-1"].tables[name] is table

    client.transact_write_items(TransactItems=writes)  # the same, without the failing put
    assert items(client, name) == {"kept": "1", "new": "2", "updated": "2"}
    assert len(table.stream_shard.items) == records + 3


def items(client: Any, table: str) -> dict[str, str]:
    return {item["sk"]["S"]: item["n"]["N"]
            for item in client.scan(TableName=table, ConsistentRead=True)["Items"]}
