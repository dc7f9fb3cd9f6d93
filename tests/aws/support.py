"""The SQS layout assembled from its real parts, for the tests: receiver handler, queue,
worker handler, and the local poller that stands in for Lambda's event source mapping."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable

import uuid
from collections import Counter

import boto3
import orjson

from ichido.aws.dynamodb_ledger import DynamoLedger
from ichido.aws.ledger import SqlLedger
from ichido.db.dynamodb import DynamoDatabase
from ichido.inbox.dynamodb import DynamoInbox
from ichido.aws.receiver import lambda_handler
from ichido.aws.stores import QueueWrite
from ichido.aws.runner import SqsPoller
from ichido.aws.worker import EventApplier, SqsWorker
from ichido.config import Settings
from ichido.handlers import HandlerRegistry
from ichido.inbox import process_shard
from ichido.seen import open_seen
from ichido.seen.memory import MemorySeenCache
from ichido.queue.sqs import SqsQueue
from tests.support import (SECRET, effect_counts, make_event, open_store, record_effect,
                           signed_headers)


def dynamodb_url() -> str:
    """A fresh ichido table in moto, for one test."""
    table = f"ichido-{uuid.uuid4().hex[:10]}"
    DynamoDatabase(table).create_table(stream=True)
    return f"dynamodb://{table}"


class DynamoEffects:
    """The effects table of a DynamoDB app: one item per application (a random sort key),
    so a second application of an event shows up as a second item."""

    def __init__(self) -> None:
        self.table = f"effects-{uuid.uuid4().hex[:10]}"
        boto3.client("dynamodb").create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])

    def record(self, event, tx) -> None:
        tx.put(self.table, {"pk": event.id, "sk": uuid.uuid4().hex, "type": event.type,
                            "attempt": event.attempt})

    def counts(self, _inbox) -> Counter:
        pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=self.table)
        return Counter(item["pk"]["S"] for page in pages for item in page["Items"])


class SqlEffects:
    """tests/apps/effects.py's table: rows without a unique key, one per application."""

    record = staticmethod(record_effect)

    def counts(self, inbox) -> Counter:
        return effect_counts(inbox)


def large_event(size: int = 500_000) -> bytes:
    """A valid invoice.paid event of about ``size`` bytes (many line items)."""
    line = {"id": "il_0", "object": "line_item", "description": "x" * 400, "amount": 100}
    count = size // (len(orjson.dumps(line)) + 1)
    body = make_event("invoice.paid", obj={
        "id": "in_large", "object": "invoice",
        "lines": {"object": "list", "data": [{**line, "id": f"il_{i}"} for i in range(count)]}})
    assert size - 2_000 < len(body) < 512 * 1024
    return body


def function_url_event(body: bytes, headers: dict[str, str] | None = None, *,
                       base64_body: bool = False, method: str = "POST",
                       path: str = "/") -> dict[str, Any]:
    """A Lambda Function URL invocation (payload 2.0), as AWS builds it: headers lower-cased,
    the body as text, or base64 with ``isBase64Encoded``."""
    headers = signed_headers(body) if headers is None else headers
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"accountId": "anonymous", "apiId": "ichido", "domainName":
                           "ichido.lambda-url.us-east-1.on.aws", "http": {
                               "method": method, "path": path, "protocol": "HTTP/1.1",
                               "sourceIp": "127.0.0.1", "userAgent": "Stripe/1.0"},
                           "requestId": "r", "routeKey": "$default", "stage": "$default",
                           "time": "01/Dec/2026:00:00:00 +0000", "timeEpoch": 0},
        "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8"),
        "isBase64Encoded": base64_body,
    }


@dataclass
class SqsLayout:
    database_url: str
    queue_url: str
    dlq_url: str
    max_receive_count: int = 3
    redis_url: str | None = None
    handlers: HandlerRegistry = field(default_factory=HandlerRegistry)
    sqs: Any = None  # boto3 clients (the cost figure counts their calls)
    dynamodb: Any = None

    def __post_init__(self) -> None:
        self.settings = Settings(database_url=self.database_url, webhook_secrets=(SECRET,),
                                 redis_url=self.redis_url)
        if self.database_url.startswith("dynamodb:"):
            database = DynamoDatabase.from_url(self.database_url, self.dynamodb)
            self.inbox = DynamoInbox(database, shard=process_shard())
            self.ledger: DynamoLedger | SqlLedger = DynamoLedger(database, shard=process_shard())
            self.effects = DynamoEffects()
        else:
            self.inbox = open_store(self.database_url)
            self.ledger = SqlLedger(self.inbox.database, process_shard())
            self.effects = SqlEffects()
        self.queue = SqsQueue(self.queue_url, dlq_url=self.dlq_url, client=self.sqs)
        self.worker = SqsWorker(EventApplier(self.handlers, self.ledger),
                                max_receive_count=self.max_receive_count,
                                fifo=self.queue.fifo, dead_letter=self.queue.dead_letter)
        self.poller = SqsPoller(self.queue_url, self.worker.handle, failed_visibility=0,
                                client=self.sqs)

    def receiver(self, seen: Any = None) -> Callable[[dict, Any], dict]:
        return self._receiver(seen)

    def _receiver(self, seen: Any = None) -> Callable[[dict, Any], dict]:
        """One Lambda execution environment of the receiver (its own loop, its own seen tier)."""
        if seen is None:
            seen = (open_seen(self.settings, self.queue_url.rsplit("/", 1)[-1])
                    if self.redis_url else MemorySeenCache(3600, 1000))
        return lambda_handler(self.settings, QueueWrite(self.queue, self.ledger.count), seen)

    def effect_counts(self) -> Counter:
        return self.effects.counts(self.inbox)

    def close(self) -> None:
        self.inbox.close()


class StreamsLayout:
    """The Streams layout from its real parts: receiver handler (conditional put), the table's
    stream (moto), the local stream poller, the worker handler."""

    def __init__(self, max_attempts: int = 3, *, dynamodb: Any = None,
                 streams_client: Any = None) -> None:
        from ichido.aws.runner import StreamPoller
        from ichido.aws.worker import StreamsWorker
        from ichido.queue import streams

        self.url = dynamodb_url()
        self.dynamodb = dynamodb
        self.inbox = self._store()
        self.effects = DynamoEffects()
        self.handlers = HandlerRegistry()
        self.handlers.on("charge.succeeded")(self.effects.record)
        self.settings = Settings(database_url=self.url, webhook_secrets=(SECRET,))
        self.ledger = DynamoLedger(self.inbox.database, shard=process_shard(), marker_apart=True)
        self.worker = StreamsWorker(EventApplier(self.handlers, self.ledger), self.ledger,
                                    max_attempts=max_attempts, wanted=streams.wanted)
        self.queue = streams.StreamsQueue(self.inbox.table_name)
        self.poller = StreamPoller(self.queue.stream_arn(), self.worker.handle,
                                   accepts=streams.wanted, client=streams_client)

    def _store(self) -> DynamoInbox:
        return DynamoInbox(DynamoDatabase.from_url(self.url, self.dynamodb), shard=process_shard())

    def receiver(self) -> Callable[[dict, Any], dict]:
        return lambda_handler(self.settings, self._store(), MemorySeenCache(3600, 1000))

    def deliver(self, body: bytes, receiver=None) -> dict:
        import json

        answer = (receiver or self.receiver())(function_url_event(body), None)
        assert answer["statusCode"] == 200, answer
        return json.loads(answer["body"])
