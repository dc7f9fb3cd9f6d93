"""The seed's second idea: the receiver's conditional PutItem is the durable write and the
dedupe, and the table's stream feeds the worker (DynamoDB Streams in moto, the local poller)."""

from __future__ import annotations

import os
import random
import threading
import uuid

import boto3
import orjson
import pytest

from ichido.aws.runner import StreamPoller, _lambda_record
from ichido.event import Event
from ichido.queue.base import Status
from ichido.queue import streams
from tests.aws.support import StreamsLayout, large_event
from tests.support import make_event


class Layout(StreamsLayout):
    def stream_records(self, event_id: str) -> list[str]:
        """Every record the stream holds for one event item: INSERT, MODIFY, …"""
        client = boto3.client("dynamodbstreams")
        arn = self.queue.stream_arn()
        names = []
        for shard in client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = client.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while iterator:
                page = client.get_records(ShardIterator=iterator)
                names += [r["eventName"] for r in page["Records"]  # not its marker's
                          if r["dynamodb"]["Keys"]["pk"]["S"] == event_id
                          and r["dynamodb"]["Keys"]["sk"]["S"] == "event"]
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        return names


@pytest.fixture
def layout(aws: str) -> StreamsLayout:
    return Layout()


def test_thirty_percent_duplicates_give_one_insert_and_one_effect_each(
        layout: StreamsLayout) -> None:
    rng = random.Random(7)
    bodies = [make_event("charge.succeeded") for _ in range(30)]
    sends = bodies + [b for b in bodies if rng.random() < 0.3]
    rng.shuffle(sends)
    environments = [layout.receiver() for _ in range(3)]
    for body in sends:
        layout.deliver(body, rng.choice(environments))
    layout.poller.drain()
    counts = layout.effects.counts(None)
    assert len(counts) == len(bodies) and set(counts.values()) == {1}
    stats = layout.inbox.stats()
    assert stats["unique"] == stats["processed"] == len(bodies)
    assert stats["received"] == len(sends)


def test_a_copy_of_the_event_writes_no_stream_record(layout: StreamsLayout) -> None:
    """The seed's question, as ichido answers it: Stripe's copies differ (pending_webhooks
    here), and the conditional put of a copy writes nothing, so the stream has one INSERT."""
    event_id = f"evt_{uuid.uuid4().hex[:24]}"
    first = make_event("charge.succeeded", id=event_id)
    copy = first.replace(b'"pending_webhooks":1', b'"pending_webhooks":2')
    assert copy != first
    assert layout.deliver(first)["status"] == "accepted"
    assert layout.deliver(copy) == {"id": event_id, "status": "duplicate", "tier": "durable"}
    assert layout.stream_records(event_id) == ["INSERT"]


def test_an_unconditional_put_of_a_copy_would_be_a_modify_record(layout: StreamsLayout) -> None:
    """Why the put is conditional: a changed copy put unconditionally is a MODIFY (on AWS
    and in moto alike), which a worker taking every change would apply again."""
    event_id = f"evt_{uuid.uuid4().hex[:24]}"
    client = boto3.client("dynamodb")
    for pending in (1, 2):
        client.put_item(TableName=layout.inbox.table_name, Item={
            "pk": {"S": event_id}, "sk": {"S": "event"}, "pending_webhooks": {"N": str(pending)}})
    assert layout.stream_records(event_id) == ["INSERT", "MODIFY"]


@pytest.mark.skipif(not os.environ.get("ICHIDO_TEST_REAL_AWS"),
                    reason="needs real DynamoDB: moto writes a MODIFY record for a PutItem that "
                           "changes nothing, where AWS writes none")
def test_an_identical_repeated_put_writes_no_stream_record(layout: StreamsLayout) -> None:
    event_id = f"evt_{uuid.uuid4().hex[:24]}"
    client = boto3.client("dynamodb")
    item = {"pk": {"S": event_id}, "sk": {"S": "event"}, "pending_webhooks": {"N": "1"}}
    for _ in range(2):
        client.put_item(TableName=layout.inbox.table_name, Item=item)
    assert layout.stream_records(event_id) == ["INSERT"]


def test_two_concurrent_receivers_with_one_event_make_one_insert(layout: StreamsLayout) -> None:
    body = make_event("charge.succeeded")
    environments = [layout.receiver(), layout.receiver()]
    start = threading.Barrier(2)
    answers: list[dict] = []

    def invoke(receiver) -> None:
        start.wait()
        answers.append(layout.deliver(body, receiver))

    threads = [threading.Thread(target=invoke, args=(r,)) for r in environments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a["status"] for a in answers) == ["accepted", "duplicate"]
    layout.poller.drain()
    assert layout.stream_records(orjson.loads(body)["id"]).count("INSERT") == 1
    assert list(layout.effects.counts(None).values()) == [1]


def test_a_batch_redelivered_after_its_commit_is_a_duplicate(layout: StreamsLayout) -> None:
    """Lambda's checkpoint lags the commit: a worker that died after committing gets the same
    records again (here: the same batch handed over twice)."""
    event_id = orjson.loads(body := make_event("charge.succeeded"))["id"]
    layout.deliver(body)
    client = boto3.client("dynamodbstreams")
    arn = layout.queue.stream_arn()
    shard = client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = [_lambda_record(r, arn, "us-east-1") for r in client.get_records(
        ShardIterator=iterator)["Records"]]
    for _ in range(2):
        assert layout.worker.handle({"Records": records}) == {"batchItemFailures": []}
    assert layout.effects.counts(None) == {event_id: 1}
    assert layout.inbox.stats()["duplicates_durable"] == 1


def test_failing_twice_then_succeeding_keeps_shard_order(layout: StreamsLayout) -> None:
    attempts: list[tuple[str, int]] = []

    def flaky(event: Event, tx) -> None:
        attempts.append((event.type, event.attempt))
        if event.type == "test.flaky" and event.attempt <= 2:
            raise RuntimeError(f"planned failure {event.attempt}")
        layout.effects.record(event, tx)

    layout.handlers.on("test.flaky", "invoice.paid")(flaky)
    layout.deliver(make_event("test.flaky"))
    layout.deliver(make_event("invoice.paid"))
    layout.poller.drain()
    # The later record waits for the failing one: it is applied once, after it.
    assert attempts == [("test.flaky", 1), ("test.flaky", 2), ("test.flaky", 3),
                        ("invoice.paid", 1)]
    assert set(layout.effects.counts(None).values()) == {1}


def test_always_failing_is_dead_then_requeued_and_applied_once(layout: StreamsLayout) -> None:
    fixed = threading.Event()

    def broken(event: Event, tx) -> None:
        if not fixed.is_set():
            raise RuntimeError("the downstream is broken")
        layout.effects.record(event, tx)

    layout.handlers.on("test.always_fails")(broken)
    event_id = orjson.loads(body := make_event("test.always_fails"))["id"]
    layout.deliver(body)
    layout.deliver(after := make_event("charge.succeeded"))  # its shard moves on (I5)
    layout.poller.drain()
    assert layout.effects.counts(None) == {orjson.loads(after)["id"]: 1}
    record = layout.inbox.get(event_id)
    assert record.status == Status.DEAD and len(record.failures) == 3
    assert [r.id for r in layout.inbox.list(status="dead")] == [event_id]
    fixed.set()
    assert layout.inbox.requeue_dead([event_id]) == 1
    layout.poller.drain()
    assert layout.effects.counts(None)[event_id] == 1
    assert layout.inbox.get(event_id).status == Status.PROCESSED
    assert layout.inbox.requeue_dead([event_id]) == 0  # only dead events are requeued


def test_ichidos_own_writes_never_reach_the_worker(layout: StreamsLayout) -> None:
    layout.deliver(make_event("charge.succeeded"))
    layout.poller.drain()
    seen: list[dict] = []
    poller = StreamPoller(layout.queue.stream_arn(), lambda e, c: seen.extend(e["Records"]),
                          accepts=lambda r: True)
    poller.drain()
    passed = [r for r in seen if streams.wanted(r)]
    assert len(seen) > len(passed) == 1  # marker, counters: filtered out


def test_a_large_event_failing_many_times_still_ends_dead_not_stuck(aws: str) -> None:
    """A body just under what the item holds in line, and failures with long errors: the list
    of failures would take the item past DynamoDB's 400 KB. The event's state must still be
    written, or it would stay ``retrying`` with nothing left to retry it."""
    attempts = 24
    layout = Layout(max_attempts=attempts)

    def failing(event: Event, tx) -> None:
        raise RuntimeError("the downstream says: " + "no " * 5_000)

    layout.handlers.on("invoice.paid")(failing)
    body = large_event(255_000)
    event_id = orjson.loads(body)["id"]
    layout.deliver(body)
    StreamPoller(layout.queue.stream_arn(), layout.worker.handle, accepts=streams.wanted,
                 max_retries=2 * attempts).drain()
    record = layout.inbox.get(event_id)
    assert (record.status, record.attempts) == (Status.DEAD, attempts)
    assert record.failures[-1][0] == attempts and len(record.failures) < attempts


def test_the_worker_marks_apart_from_the_compressed_body_and_reads_old_items(
        layout: StreamsLayout) -> None:
    """The receiver stores the body compressed; the worker's marker is an item of its own, so
    the event item (the body's) is written once. An item written before compression (its body
    in ``body``, a previous version's stream record) still applies once, and reads back."""
    from ichido.db.dynamodb import to_item

    new = make_event("charge.succeeded")
    new_id = orjson.loads(new)["id"]
    layout.deliver(new)
    old = make_event("charge.succeeded")
    old_id = orjson.loads(old)["id"]
    boto3.client("dynamodb").put_item(TableName=layout.inbox.table_name, Item=to_item({
        "pk": old_id, "sk": "event", "type": "charge.succeeded", "created": 1,
        "status": "pending", "attempts": 0, "received_at": 1.0, "body": old}))
    layout.poller.drain()
    assert layout.effects.counts(None) == {new_id: 1, old_id: 1}
    assert layout.stream_records(new_id) == ["INSERT"]  # the body's item, never rewritten
    item = boto3.client("dynamodb").get_item(TableName=layout.inbox.table_name, Key=to_item(
        {"pk": new_id, "sk": "event"}))["Item"]
    assert "body" not in item and len(item["body_zlib"]["B"]) < len(new)
    for event_id, body in ((new_id, new), (old_id, old)):
        record = layout.inbox.get(event_id)
        assert record is not None and (record.status, record.body) == ("processed", body)
    assert layout.inbox.stats()["processed"] == 2
