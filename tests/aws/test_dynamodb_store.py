"""DynamoDB as the store: a handler's writes and the processed marker are one
TransactWriteItems, or nothing."""

from __future__ import annotations

import orjson
import pytest

from ichido.db.dynamodb import MAX_ITEMS
from ichido.event import Event
from ichido.queue.base import Status
from tests.aws.support import SqsLayout, dynamodb_url, function_url_event
from tests.support import make_event


@pytest.fixture
def layout(queues: tuple[str, str]):
    built = SqsLayout(dynamodb_url(), *queues)
    yield built
    built.close()


def send(layout: SqsLayout, body: bytes) -> str:
    assert layout.receiver()(function_url_event(body), None)["statusCode"] == 200
    return orjson.loads(body)["id"]


def test_one_item_past_the_transaction_limit_is_a_clear_error_and_nothing_is_written(
        layout: SqsLayout) -> None:
    written: list[int] = []

    def too_many(event: Event, tx) -> None:
        for n in range(MAX_ITEMS):  # ichido keeps two of the hundred
            tx.put(layout.effects.table, {"pk": event.id, "sk": f"{n:03}"})
            written.append(n)

    layout.handlers.on("charge.succeeded")(too_many)
    event_id = send(layout, make_event("charge.succeeded"))
    layout.poller.drain()
    assert len(written) == 3 * (MAX_ITEMS - 2)  # on each of 3 receives the 99th put raised
    assert layout.effect_counts() == {}
    record = layout.inbox.get(event_id)
    assert record.status == Status.DEAD
    assert "TransactionTooLarge: a DynamoDB transaction holds at most 100 items" in record.last_error


def test_ninety_eight_items_commit_with_the_marker(layout: SqsLayout) -> None:
    def many(event: Event, tx) -> None:
        for n in range(MAX_ITEMS - 2):
            tx.put(layout.effects.table, {"pk": event.id, "sk": f"{n:03}"})

    layout.handlers.on("charge.succeeded")(many)
    event_id = send(layout, make_event("charge.succeeded"))
    layout.poller.drain()
    assert layout.effect_counts() == {event_id: MAX_ITEMS - 2}
    assert layout.inbox.get(event_id).status == Status.PROCESSED


def test_a_handler_reads_consistently_and_its_condition_guards_the_commit(
        layout: SqsLayout) -> None:
    """Forward-only state (I4): the handler reads the order, writes only if its status is
    still what it read; an older event finds the newer status and does nothing."""
    table = layout.effects.table

    def paid(event: Event, tx) -> None:
        order = tx.get(table, {"pk": "order_1", "sk": "state"}) or {"rank": 0}
        rank = {"payment_intent.processing": 1, "payment_intent.succeeded": 2}[event.type]
        if rank <= order["rank"]:
            return
        tx.put(table, {"pk": "order_1", "sk": "state", "rank": rank, "by": event.id},
               condition="attribute_not_exists(pk) OR #rank = :seen",
               names={"#rank": "rank"}, values={":seen": order["rank"]})

    layout.handlers.on("payment_intent.processing", "payment_intent.succeeded")(paid)
    newer = send(layout, make_event("payment_intent.succeeded"))
    layout.poller.drain()
    send(layout, make_event("payment_intent.processing"))
    layout.poller.drain()
    state = layout.inbox.database.get(table, {"pk": "order_1", "sk": "state"})
    assert (state["rank"], state["by"]) == (2, newer)


def test_a_failed_condition_rolls_the_event_back_for_a_retry(layout: SqsLayout) -> None:
    table = layout.effects.table

    def guarded(event: Event, tx) -> None:
        tx.put(table, {"pk": event.id, "sk": "effect"})
        tx.condition_check(table, {"pk": "gate", "sk": "open"}, "attribute_exists(pk)")

    layout.handlers.on("charge.succeeded")(guarded)
    event_id = send(layout, make_event("charge.succeeded"))
    layout.poller.poll_once()
    assert layout.effect_counts() == {}
    assert layout.inbox.get(event_id).status == Status.RETRYING
    with layout.inbox.database.transaction() as tx:
        tx.put(table, {"pk": "gate", "sk": "open"})
    layout.poller.drain()
    assert layout.effect_counts()[event_id] == 1


def test_sql_on_dynamodb_is_a_named_error(layout: SqsLayout) -> None:
    def sql(event: Event, tx) -> None:
        tx.execute("INSERT INTO effects VALUES (?)", (event.id,))

    layout.handlers.on("charge.succeeded")(sql)
    event_id = send(layout, make_event("charge.succeeded"))
    layout.poller.poll_once()
    assert "SqlNotSupported: a DynamoDB transaction runs no SQL" in \
        layout.inbox.get(event_id).last_error


def test_stats_have_the_keys_of_every_other_store(layout: SqsLayout, tmp_path) -> None:
    from tests.support import open_store

    sqlite = open_store(f"sqlite:///{tmp_path / 'i.db'}")
    try:
        assert set(layout.inbox.stats()) == set(sqlite.stats())
    finally:
        sqlite.close()


def test_two_workers_on_one_object_at_once_serialize_through_the_condition(
        layout: SqsLayout) -> None:
    """I4/I8 on a standard queue: two events of one order run at the same instant in two
    invocations, both read rank 0. The first commit wins; the other's condition fails, its
    whole transaction (marker included) is cancelled and retried, and then it sees rank 2."""
    import threading

    import boto3

    table = layout.effects.table
    both_read = threading.Barrier(2)
    ran: list[str] = []

    def advance(event: Event, tx) -> None:
        order = tx.get(table, {"pk": "order_1", "sk": "state"}) or {"rank": 0}
        if len(ran) < 2:
            ran.append(event.type)
            both_read.wait(timeout=30)
        rank = {"payment_intent.processing": 1, "payment_intent.succeeded": 2}[event.type]
        if rank <= order["rank"]:
            return
        tx.put(table, {"pk": "order_1", "sk": "state", "rank": rank, "by": event.type},
               condition="attribute_not_exists(pk) OR #rank = :seen",
               names={"#rank": "rank"}, values={":seen": order["rank"]})

    layout.handlers.on("payment_intent.processing", "payment_intent.succeeded")(advance)
    send(layout, make_event("payment_intent.succeeded", object_id="pi_1"))
    send(layout, make_event("payment_intent.processing", object_id="pi_1"))
    messages = boto3.client("sqs").receive_message(
        QueueUrl=layout.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
        AttributeNames=["All"])["Messages"]
    assert len(messages) == 2
    threads = [threading.Thread(target=layout.worker.handle,
                                args=({"Records": [layout.poller._record(m)]},))
               for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    layout.poller.drain()  # whatever lost the race comes back and finds the newer state
    state = layout.inbox.database.get(table, {"pk": "order_1", "sk": "state"})
    assert state["rank"] == 2
    assert {r.status for r in layout.inbox.list()} == {Status.PROCESSED}


def test_stats_count_unique_events_from_their_markers_and_old_counters_once(
        layout: SqsLayout) -> None:
    """A new event's transaction writes no counter: ``unique`` (and its ``received``) are the
    finished markers. Counters a previous version kept in that transaction, with markers it
    wrote, are not counted twice."""
    from ichido.db.dynamodb import to_item

    client, table = layout.inbox.client, layout.inbox.table_name
    for old in ("evt_old_1", "evt_old_2"):  # what the previous version left: marker + counter
        client.put_item(TableName=table, Item=to_item({
            "pk": old, "sk": "event", "type": "charge.succeeded", "created": 1,
            "status": "processed", "attempts": 1, "received_at": 1.0, "finished_at": 1.0}))
    client.update_item(TableName=table, Key=to_item({"pk": "counters", "sk": "old-shard"}),
                       UpdateExpression="ADD received :r, #u :u, duplicates_durable :d",
                       ExpressionAttributeNames={"#u": "unique"},
                       ExpressionAttributeValues=to_item({":r": 3, ":u": 2, ":d": 1}))
    layout.handlers.on("charge.succeeded")(layout.effects.record)
    body = make_event("charge.succeeded")
    send(layout, body)
    layout.poller.drain()
    send(layout, body)  # another receiver's copy: refused by the marker's condition
    layout.poller.drain()
    stats = layout.inbox.stats()
    assert (stats["unique"], stats["received"], stats["duplicates_durable"]) == (3, 5, 2)
    assert layout.effect_counts() == {orjson.loads(body)["id"]: 1}
    counters = client.get_item(TableName=table, ConsistentRead=True, Key=to_item(
        {"pk": "counters", "sk": layout.ledger.shard}))["Item"]
    assert "unique" not in counters  # the new event's transaction counted nothing
