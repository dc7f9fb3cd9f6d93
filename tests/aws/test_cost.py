"""The cost figure: AWS API calls and DynamoDB request units per event on each layout (new
event, cached duplicate, durable duplicate, one failed attempt), beside Powertools'
idempotency on DynamoDB, all counted from runs through the real handlers on moto.

Counted per event over batches of ten (the poller's ReceiveMessage and DeleteMessageBatch are
shared by a batch). Left out: the local poller's ChangeMessageVisibility (Lambda waits out the
visibility timeout instead) and Lambda's own stream reads (free for Lambda triggers). Run with
``-s`` to see the table (the cost table in docs/aws.md comes from it)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from tests.aws.conftest import make_queues
from tests.aws.cost import Meter, per_event
from tests.aws.support import DynamoEffects, SqsLayout, StreamsLayout, dynamodb_url, \
    function_url_event
from tests.support import make_event, migrate_effects

N = 10
CASES = ("new event", "cached duplicate", "durable duplicate", "failed attempt")
IGNORED = ("sqs:ChangeMessageVisibilityBatch", "sqs:GetQueueAttributes")


def realistic_event(type: str = "charge.succeeded") -> bytes:
    """About the size of a real charge event (2-3 KB)."""
    obj = {"id": f"ch_{uuid.uuid4().hex[:24]}", "object": "charge", "amount": 1200,
           "currency": "jpy", "metadata": {"order": "o_1"},
           "billing_details": {"email": "buyer@example.com", "name": "Buyer"},
           "outcome": {"network_status": "approved_by_network", "type": "authorized"},
           "payment_method_details": {"card": {"brand": "visa", "last4": "4242"}},
           "description": "x" * 2000}
    return make_event(type, obj=obj)


def measure(meter: Meter, deliver, poll, failing) -> dict[str, dict[str, float]]:
    rows = {}
    bodies = [realistic_event() for _ in range(N)]
    first, again = deliver.receivers()
    start = meter.reading()
    for body in bodies:
        deliver(first, body)
    poll()
    rows["new event"] = per_event(start, meter.reading(), N)
    start = meter.reading()
    for body in bodies:
        deliver(first, body)
    rows["cached duplicate"] = per_event(start, meter.reading(), N)
    start = meter.reading()
    for body in bodies:
        deliver(again, body)
    poll()
    rows["durable duplicate"] = per_event(start, meter.reading(), N)
    bad = [realistic_event("test.fails_once") for _ in range(failing)]
    for body in bad:
        deliver(first, body)
    start = meter.reading()
    poll()
    rows["failed attempt"] = per_event(start, meter.reading(), failing)
    return {case: {k: v for k, v in row.items() if k not in IGNORED} for case, row in rows.items()}


class Deliver:
    def __init__(self, make_receiver) -> None:
        self.make = make_receiver

    def receivers(self):
        return self.make(), self.make()

    def __call__(self, receiver, body: bytes) -> None:
        assert receiver(function_url_event(body), None)["statusCode"] == 200


def fails_once(record):
    def handler(event, tx) -> None:
        if event.attempt == 1:
            raise RuntimeError("planned failure")
        record(event, tx)
    return handler


@pytest.fixture
def meter(aws: str) -> Meter:
    return Meter()


def sqs_layout_rows(meter: Meter, database_url: str) -> dict:
    sqs = meter.attach(boto3.client("sqs"))
    dynamodb = meter.attach(boto3.client("dynamodb"))
    layout = SqsLayout(database_url, *make_queues(), sqs=sqs, dynamodb=dynamodb)
    layout.handlers.on("charge.succeeded")(layout.effects.record)
    layout.handlers.on("test.fails_once")(fails_once(layout.effects.record))
    layout.poller.handler = meter.counted(layout.poller.handler)
    try:
        return measure(meter, Deliver(lambda: meter.counted(layout.receiver())),
                       layout.poller.poll_once, N)
    finally:
        layout.close()


def test_cost_sqs_dynamodb(meter: Meter) -> None:
    rows = sqs_layout_rows(meter, dynamodb_url())
    report("SQS + DynamoDB", rows)
    new = rows["new event"]
    assert (new["sqs:SendMessage"], new["dynamodb:GetItem"],
            new["dynamodb:TransactWriteItems"]) == (1, 1, 1)
    # marker, counter, change key (twins, ichido.thin.twins), effect: 1 KB each, doubled in a
    # transaction
    assert new["write_units"] == 8
    assert rows["cached duplicate"] == {"dynamodb:UpdateItem": 1, "write_units": 1,
                                        "invocations": 1}
    durable = rows["durable duplicate"]
    assert "dynamodb:TransactWriteItems" not in durable and durable["dynamodb:UpdateItem"] == 1


def test_cost_sqs_postgres(meter: Meter, postgres_url: str) -> None:
    migrate_effects(postgres_url)
    rows = sqs_layout_rows(meter, postgres_url)
    report("SQS + PostgreSQL", rows)
    assert {k for row in rows.values() for k in row if k.startswith("dynamodb")} == set()
    assert rows["new event"]["sqs:SendMessage"] == 1
    assert "sqs:SendMessage" not in rows["cached duplicate"]


def test_cost_streams_dynamodb(meter: Meter) -> None:
    dynamodb = meter.attach(boto3.client("dynamodb"))
    layout = StreamsLayout(dynamodb=dynamodb)
    layout.handlers.on("test.fails_once")(fails_once(layout.effects.record))
    layout.poller.handler = meter.counted(layout.poller.handler)
    rows = measure(meter, Deliver(lambda: meter.counted(layout.receiver())),
                   layout.poller.poll_once, 1)  # one shard: a failure holds what follows it
    report("DynamoDB Streams", rows)
    new = rows["new event"]
    assert (new["dynamodb:PutItem"], new["dynamodb:TransactWriteItems"]) == (1, 1)
    assert not any(k.startswith("sqs") for row in rows.values() for k in row)
    assert rows["durable duplicate"]["dynamodb:PutItem"] == 1  # the refused conditional put


def test_cost_powertools_idempotency_beside_it(meter: Meter) -> None:
    """Powertools' pattern on the same SQS layout: a put (INPROGRESS) and an update
    (COMPLETED) per event, the handler's own write outside that (no shared transaction)."""
    from aws_lambda_powertools.utilities.idempotency import (DynamoDBPersistenceLayer,
                                                             IdempotencyConfig,
                                                             idempotent_function)

    from ichido.aws.receiver import lambda_handler
    from ichido.aws.runner import SqsPoller
    from ichido.aws.stores import QueueWrite
    from ichido.config import Settings
    from ichido.seen.memory import MemorySeenCache
    from ichido.queue.sqs import SqsQueue
    from tests.support import SECRET

    sqs = meter.attach(boto3.client("sqs"))
    dynamodb = meter.attach(boto3.client("dynamodb"))
    table = f"powertools-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb").create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    effects = DynamoEffects()
    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb)

    @idempotent_function(data_keyword_argument="event", persistence_store=persistence,
                         config=IdempotencyConfig(event_key_jmespath="id"))
    def process(event: dict) -> dict:
        if event["type"] == "test.fails_once" and not attempts.setdefault(event["id"], 0):
            attempts[event["id"]] += 1
            raise RuntimeError("planned failure")
        dynamodb.put_item(TableName=effects.table, Item={"pk": {"S": event["id"]},
                                                          "sk": {"S": uuid.uuid4().hex}})
        return {"applied": event["id"]}

    attempts: dict[str, int] = {}

    def worker(batch: dict, _context) -> dict:
        failures = []
        for record in batch["Records"]:
            try:
                process(event=json.loads(record["body"]))
            except RuntimeError:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    queue, _dlq = make_queues()
    poller = SqsPoller(queue, meter.counted(worker), failed_visibility=0, client=sqs)
    settings = Settings(webhook_secrets=(SECRET,))
    inbox = QueueWrite(SqsQueue(queue, client=sqs))  # no counters: Powertools keeps none
    rows = measure(meter, Deliver(lambda: meter.counted(lambda_handler(
        settings, inbox, MemorySeenCache(3600, 1000)))), poller.poll_once, N)
    report("SQS + Powertools idempotency (DynamoDB)", rows)
    new = rows["new event"]
    assert (new["dynamodb:PutItem"], new["dynamodb:UpdateItem"]) == (2, 1)  # marker, effect
    assert rows["durable duplicate"]["dynamodb:PutItem"] == 1  # the refused INPROGRESS put


def report(name: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{name}")
    for case in CASES:
        row = rows[case]
        calls = ", ".join(f"{k.split(':')[1]} {v:g}" for k, v in row.items() if ":" in k)
        print(f"  {case:18} | {calls or '-':70} | WRU {row.get('write_units', 0):g}"
              f" | RRU {row.get('read_units', 0):g} | invocations {row.get('invocations', 0):g}")
