"""A local stand-in for Lambda's event-source mappings, which moto cannot run.

It does what Lambda's pollers do, against real SQS and DynamoDB Streams APIs (moto here, AWS
itself works too), and invokes the real handler functions with the payloads Lambda would build:

- SQS: receive up to ``batch_size`` messages under ``visibility_timeout``, invoke, delete the
  records not named in ``batchItemFailures`` (all of them stay when the handler raises). The
  failed ones come back when their visibility timeout ends; SQS itself counts receives and
  moves a message to the DLQ past the redrive policy's ``maxReceiveCount``.
- DynamoDB Streams: per shard, a shard iterator from TRIM_HORIZON, records filtered as the
  mapping's FilterCriteria would, batches in order; on a reported failure the batch is
  retried from the failed record's sequence number (Lambda's checkpoint), so one shard's
  records are never applied out of order.

``failed_visibility`` shortens the wait for a failed message (tests and ``ichido aws local``
set it instead of sleeping out the timeout); ``None`` leaves SQS's own timeout, as Lambda does.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any, Callable

import boto3

from ichido import worker

log = logging.getLogger("ichido.aws.runner")

LambdaHandler = Callable[[dict[str, Any], Any], Any]


class SqsPoller:
    def __init__(self, queue_url: str, handler: LambdaHandler, *, batch_size: int = 10,
                 visibility_timeout: int = 30, failed_visibility: int | None = None,
                 client: Any = None) -> None:
        self.url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.visibility_timeout = visibility_timeout
        self.failed_visibility = failed_visibility
        self.client = client or boto3.client("sqs")
        attributes = self.client.get_queue_attributes(QueueUrl=queue_url,
                                                      AttributeNames=["QueueArn"])["Attributes"]
        self.arn = attributes["QueueArn"]
        self.region = self.arn.split(":")[3]

    def poll_once(self, *, crash_before_delete: bool = False) -> int:
        """One batch: receive, invoke, delete what succeeded; return how many were received.

        ``crash_before_delete`` stops after the invocation, as a poller that died there would:
        nothing is deleted and every message comes back after its visibility timeout."""
        messages = self.client.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=self.batch_size,
            VisibilityTimeout=self.visibility_timeout, AttributeNames=["All"],
            MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        try:
            answer = self.handler({"Records": [self._record(m) for m in messages]}, None)
        except Exception:  # a handler that raises fails the whole batch, as on Lambda
            log.exception("the SQS handler raised: the whole batch stays on the queue")
            failed = {m["MessageId"] for m in messages}
        else:
            failed = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
        if crash_before_delete:
            return len(messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        self._batch("delete_message_batch", [{"ReceiptHandle": m["ReceiptHandle"]} for m in done])
        if self.failed_visibility is not None:
            self._batch("change_message_visibility_batch",
                        [{"ReceiptHandle": m["ReceiptHandle"],
                          "VisibilityTimeout": self.failed_visibility}
                         for m in messages if m["MessageId"] in failed])
        return len(messages)

    def drain(self, max_batches: int = 10_000) -> int:
        """Poll until a receive comes back empty; return how many messages were received."""
        return worker.drain(self.poll_once, max_batches)

    def run(self, stop: threading.Event, idle_wait: float = 0.2) -> None:
        """Poll until ``stop``, as Lambda's poller does: a failed poll is logged, backed off
        and tried again (the worker's loop, with nothing to wake it early)."""
        worker.poll(f"SQS poller {self.url}", self.poll_once, stop, None,
                    idle_wait)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        """The record Lambda builds from a received message."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"],
                       "stringListValues": [], "binaryListValues": []}
                for name, value in message.get("MessageAttributes", {}).items()},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.region,
        }

    def _batch(self, operation: str, entries: list[dict[str, Any]]) -> None:
        for start in range(0, len(entries), 10):
            chunk = entries[start:start + 10]
            getattr(self.client, operation)(
                QueueUrl=self.url, Entries=[{"Id": str(i), **e} for i, e in enumerate(chunk)])


RecordFilter = Callable[[dict[str, Any]], bool]


class StreamPoller:
    """One DynamoDB stream. ``accepts`` plays the mapping's FilterCriteria: records it refuses
    are skipped (and, on Lambda, not billed as invocations)."""

    def __init__(self, stream_arn: str, handler: LambdaHandler, *, batch_size: int = 100,
                 accepts: RecordFilter = lambda record: True, max_retries: int = 10,
                 client: Any = None) -> None:
        self.arn = stream_arn
        self.handler = handler
        self.batch_size = batch_size
        self.accepts = accepts
        self.max_retries = max_retries
        self.client = client or boto3.client("dynamodbstreams")
        self.region = stream_arn.split(":")[3]
        self._iterators: dict[str, str | None] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._retries: dict[str, int] = {}

    def poll_once(self) -> int:
        """One round over the shards; return how many records were handed to the handler."""
        self._discover()
        handled = 0
        for shard in list(self._iterators):
            handled += self._poll_shard(shard)
        return handled

    def drain(self, max_rounds: int = 10_000) -> int:
        """Poll until a round hands nothing over; return how many records it handed over. A
        shard with records left always hands some over, so nothing is left pending then."""
        return worker.drain(self.poll_once, max_rounds)

    def run(self, stop: threading.Event, idle_wait: float = 0.2) -> None:
        """Poll until ``stop``; a failed poll is logged, backed off and tried again."""
        worker.poll(f"stream poller {self.arn}", self.poll_once, stop, None,
                    idle_wait)

    def _discover(self) -> None:
        shards = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard["ShardId"],
                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                self._pending[shard["ShardId"]] = []

    def _poll_shard(self, shard: str) -> int:
        pending = self._pending[shard]
        iterator = self._iterators[shard]
        if not pending and iterator:
            answer = self.client.get_records(ShardIterator=iterator, Limit=self.batch_size)
            self._iterators[shard] = answer.get("NextShardIterator")
            pending.extend(r for r in answer["Records"] if self.accepts(_lambda_record(
                r, self.arn, self.region)))
        if not pending:
            return 0
        batch = pending[: self.batch_size]
        records = [_lambda_record(r, self.arn, self.region) for r in batch]
        try:
            answer = self.handler({"Records": records}, None) or {}
            failed = [item["itemIdentifier"] for item in answer.get("batchItemFailures", [])]
        except Exception:
            log.exception("the stream handler raised: the batch is retried whole")
            failed = [records[0]["dynamodb"]["SequenceNumber"]]
        if not failed:
            del pending[: len(batch)]
            self._retries.pop(shard, None)
            return len(batch)
        # Lambda's checkpoint: everything before the earliest failed record is done; the
        # batch is retried from that record on, up to MaximumRetryAttempts, then skipped.
        sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
        first = min((sequences.index(s) for s in failed if s in sequences), default=0)
        if first:
            self._retries.pop(shard, None)
        del pending[:first]
        self._retries[shard] = self._retries.get(shard, 0) + 1
        if self._retries[shard] > self.max_retries:
            log.error("record %s failed %d retries: skipped (Lambda's on-failure destination)",
                      sequences[first], self.max_retries)
            del pending[:1]
            self._retries.pop(shard)
        return len(batch)


def _lambda_record(record: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    """A stream record as Lambda hands it over: JSON, so binary values are base64 text."""
    dynamodb = dict(record["dynamodb"])
    for image in ("NewImage", "OldImage", "Keys"):
        if image in dynamodb:
            dynamodb[image] = {name: _json_value(value) for name, value in dynamodb[image].items()}
    created = dynamodb.get("ApproximateCreationDateTime")
    if created is not None and hasattr(created, "timestamp"):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {"eventID": record["eventID"], "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
            "awsRegion": region, "dynamodb": dynamodb, "eventSourceARN": arn}


def _json_value(value: dict[str, Any]) -> dict[str, Any]:
    if "B" in value:
        return {"B": base64.b64encode(value["B"]).decode()}
    return value
