"""The SQS layout end to end on PostgreSQL and on DynamoDB: receiver handler → SQS (moto) → the local poller →
worker handler → one transaction with the processed marker. The scenarios every backend
passes, where they apply to a queue that the store does not own."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter

import boto3
import orjson
import pytest

from ichido.event import Event
from ichido.queue.base import Status
from tests.aws.conftest import make_queues
from tests.aws.support import SqsLayout, dynamodb_url, function_url_event, large_event
from tests.support import make_event, migrate_effects


@pytest.fixture(params=["postgres", "dynamodb"])
def database_url(request: pytest.FixtureRequest, aws: str) -> str:
    if request.param == "dynamodb":
        return dynamodb_url()
    url = request.getfixturevalue("postgres_url")
    migrate_effects(url)
    return url


@pytest.fixture
def layout(queues: tuple[str, str], database_url: str):
    built = SqsLayout(database_url, *queues)
    built.handlers.on("charge.succeeded", "invoice.paid")(built.effects.record)
    yield built
    built.close()


def deliver(layout: SqsLayout, body: bytes, receiver=None) -> dict:
    answer = (receiver or layout.receiver())(function_url_event(body), None)
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])


def test_thirty_percent_duplicates_give_one_effect_each(layout: SqsLayout) -> None:
    rng = random.Random(12)
    bodies = [make_event("charge.succeeded") for _ in range(40)]
    # Copies go through other execution environments too, so some miss the seen tier and
    # reach the worker: those are the durable tier's to catch.
    environments = [layout.receiver() for _ in range(3)]
    sends = bodies + [b for b in bodies if rng.random() < 0.3]
    rng.shuffle(sends)
    for body in sends:
        deliver(layout, body, rng.choice(environments))
    layout.poller.drain()
    counts = layout.effect_counts()
    assert set(counts.values()) == {1} and len(counts) == len(bodies)
    stats = layout.inbox.stats()
    assert stats["unique"] == stats["processed"] == len(bodies)
    assert stats["received"] == len(sends)
    assert stats["duplicates_cache"] + stats["duplicates_durable"] == len(sends) - len(bodies)


def test_two_concurrent_invocations_with_the_same_event_give_one_effect(
        layout: SqsLayout) -> None:
    """SQS standard queues may hand one message to two pollers at once: two invocations hold
    the same record; PostgreSQL's unique key makes the second wait, then see the marker."""
    deliver(layout, make_event("charge.succeeded"))
    message = boto3.client("sqs").receive_message(
        QueueUrl=layout.queue_url, AttributeNames=["All"])["Messages"][0]
    record = layout.poller._record(message)
    answers: list[dict] = []
    start = threading.Barrier(2)

    def invoke() -> None:
        start.wait()
        answers.append(layout.worker.handle({"Records": [record]}))

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [{"batchItemFailures": []}] * 2
    assert list(layout.effect_counts().values()) == [1]
    assert layout.inbox.stats()["duplicates_durable"] == 1


def test_two_concurrent_receivers_with_the_same_event_give_one_effect(layout: SqsLayout) -> None:
    body = make_event("charge.succeeded")
    environments = [layout.receiver(), layout.receiver()]
    start = threading.Barrier(2)
    answers: list[dict] = []

    def invoke(receiver) -> None:
        start.wait()
        answers.append(deliver(layout, body, receiver))

    threads = [threading.Thread(target=invoke, args=(r,)) for r in environments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    layout.poller.drain()
    assert [a["status"] for a in answers] == ["accepted", "accepted"]  # both on the queue
    assert list(layout.effect_counts().values()) == [1]


def test_a_worker_dying_between_commit_and_delete_is_redelivered_as_a_duplicate(
        layout: SqsLayout) -> None:
    from ichido.aws.runner import SqsPoller

    deliver(layout, make_event("charge.succeeded"))
    # Visibility 0: the message is due again at once, as after its timeout on AWS.
    dying = SqsPoller(layout.queue_url, layout.worker.handle, visibility_timeout=0)
    assert dying.poll_once(crash_before_delete=True) == 1
    assert list(layout.effect_counts().values()) == [1]
    assert layout.poller.drain() == 1
    assert list(layout.effect_counts().values()) == [1]
    stats = layout.inbox.stats()
    assert (stats["unique"], stats["duplicates_durable"]) == (1, 1)
    assert layout.queue.depth()["pending"] == 0


def test_a_handler_failing_twice_then_succeeding_applies_once_on_the_third_receive(
        layout: SqsLayout) -> None:
    attempts: list[int] = []

    def flaky(event: Event, tx) -> None:
        attempts.append(event.attempt)
        if event.attempt <= 2:
            raise RuntimeError(f"planned failure {event.attempt}")
        layout.effects.record(event, tx)

    layout.handlers.on("test.flaky")(flaky)
    body = make_event("test.flaky")
    deliver(layout, body)
    layout.poller.drain()
    assert attempts == [1, 2, 3]
    assert list(layout.effect_counts().values()) == [1]
    record = layout.inbox.get(orjson.loads(body)["id"])
    assert record.status == Status.PROCESSED
    assert [f[0] for f in record.failures] == [1, 2]
    assert "planned failure 2" in record.failures[-1][2]


def test_always_failing_goes_to_the_dlq_then_a_fix_and_redrive_apply_it_once(
        layout: SqsLayout) -> None:
    fixed = threading.Event()

    def broken(event: Event, tx) -> None:
        if not fixed.is_set():
            raise RuntimeError("the downstream is broken")
        layout.effects.record(event, tx)

    layout.handlers.on("test.always_fails")(broken)
    body = make_event("test.always_fails")
    event_id = orjson.loads(body)["id"]
    deliver(layout, body)
    deliver(layout, make_event("charge.succeeded"))  # flows on past the bad one (I5)
    layout.poller.drain()
    assert layout.poller.poll_once() == 0  # SQS moved it to the DLQ past maxReceiveCount
    assert [d.event_id for d in layout.queue.dead_letters()] == [event_id]
    record = layout.inbox.get(event_id)
    assert record.status == Status.DEAD and len(record.failures) == 3
    assert layout.inbox.stats()["dead"] == 1
    fixed.set()
    assert layout.queue.redrive() == 1
    layout.poller.drain()
    assert layout.effect_counts()[event_id] == 1
    assert layout.queue.dead_letters() == []
    assert layout.inbox.get(event_id).status == Status.PROCESSED


def test_a_redriven_message_already_applied_stays_one_effect(layout: SqsLayout) -> None:
    body = make_event("charge.succeeded")
    deliver(layout, body)
    layout.poller.drain()
    # The same event in the DLQ (e.g. applied, then the delete was lost until redrive).
    boto3.client("sqs").send_message(QueueUrl=layout.dlq_url, MessageBody=body.decode())
    assert layout.queue.redrive() == 1
    layout.poller.drain()
    assert list(layout.effect_counts().values()) == [1]
    assert layout.inbox.stats()["duplicates_durable"] == 1


def test_a_poison_message_is_left_for_the_dlq(layout: SqsLayout) -> None:
    boto3.client("sqs").send_message(QueueUrl=layout.queue_url, MessageBody="not an event")
    layout.poller.drain()
    assert [d.body for d in layout.queue.dead_letters()] == ["not an event"]


@pytest.mark.redis
def test_a_redis_flush_loses_nothing_and_applies_nothing_twice(
        queues: tuple[str, str], database_url: str, redis_url: str) -> None:
    layout = SqsLayout(database_url, *queues, redis_url=redis_url)
    layout.handlers.on("charge.succeeded")(layout.effects.record)
    try:
        receiver = layout.receiver()
        bodies = [make_event("charge.succeeded") for _ in range(5)]
        for body in bodies:
            deliver(layout, body, receiver)
        assert {deliver(layout, b, receiver)["tier"] for b in bodies} == {"cache"}
        flushed = layout.receiver()
        from ichido.seen import open_seen

        open_seen(layout.settings, layout.queue_url.rsplit("/", 1)[-1]).clear()
        assert {deliver(layout, b, flushed)["status"] for b in bodies} == {"accepted"}
        layout.poller.drain()
        counts = layout.effect_counts()
        assert len(counts) == 5 and set(counts.values()) == {1}
        stats = layout.inbox.stats()
        assert (stats["duplicates_cache"], stats["duplicates_durable"]) == (5, 5)
    finally:
        layout.close()


def test_fifo_groups_by_object_and_dedupes_on_the_event_id(database_url: str) -> None:
    """FIFO: group = the Stripe object, deduplication id = the event id. Whether SQS drops a
    re-sent copy depends on its 5-minute window (moto forgets it once the first copy is
    deleted; AWS would not): the test asserts only what holds either way, one effect."""
    layout = SqsLayout(database_url, *make_queues(fifo=True))
    layout.handlers.on("charge.succeeded")(layout.effects.record)
    try:
        bodies = [make_event("charge.succeeded", object_id="ch_same") for _ in range(3)]
        for body in bodies:
            deliver(layout, body)
        layout.poller.drain()
        deliver(layout, bodies[0], layout.receiver())
        layout.poller.drain()
        assert layout.effect_counts() == Counter(orjson.loads(b)["id"] for b in bodies)
    finally:
        layout.close()


def eventbridge_envelope(body: bytes) -> str:
    """What an EventBridge rule puts on SQS for a Stripe partner event source."""
    event = orjson.loads(body)
    return orjson.dumps({
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": event["type"],
        "source": "aws.partner/stripe.com/ed_test_61Qxyz/ichido",
        "account": "123456789012", "time": "2026-12-01T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": event}).decode()


def test_eventbridge_envelopes_apply_once_beside_webhooks(layout: SqsLayout) -> None:
    """No signature on this path (IAM puts it on the queue); the same marker dedupes it
    against the webhook copy of the same event."""
    body = make_event("charge.succeeded")
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=layout.queue_url, MessageBody=eventbridge_envelope(body))
    sqs.send_message(QueueUrl=layout.queue_url, MessageBody=eventbridge_envelope(body))
    deliver(layout, body)
    layout.poller.drain()
    assert layout.effect_counts() == {orjson.loads(body)["id"]: 1}
    assert layout.inbox.stats()["duplicates_durable"] == 2


def test_an_envelope_from_another_source_is_not_taken_for_stripe(layout: SqsLayout) -> None:
    envelope = json.loads(eventbridge_envelope(make_event("charge.succeeded")))
    envelope["source"] = "com.example.other"
    boto3.client("sqs").send_message(QueueUrl=layout.queue_url, MessageBody=json.dumps(envelope))
    layout.poller.drain()
    assert layout.effect_counts() == {}
    assert len(layout.queue.dead_letters()) == 1


def test_fifo_a_poison_holds_back_only_its_own_group(database_url: str) -> None:
    """One batch holds groups A and B; A's first event always fails. B's events apply at once
    (not failed with A's: that dead-lettered them), A's later events wait behind the poison
    until it has spent its receives, then apply in order; the poison alone is dead-lettered."""
    layout = SqsLayout(database_url, *make_queues(fifo=True))
    log: list[tuple[str, object]] = []

    def record(event: Event, tx) -> None:
        layout.effects.record(event, tx)
        log.append(("applied", event.id))

    def poison(event: Event, tx) -> None:
        log.append(("poison", event.attempt))
        raise RuntimeError("this event can never apply")

    layout.handlers.on("charge.succeeded")(record)
    layout.handlers.on("test.poison")(poison)
    try:
        sends = [make_event("test.poison", object_id="ch_A"),
                 make_event("charge.succeeded", object_id="ch_B"),
                 make_event("charge.succeeded", object_id="ch_A"),
                 make_event("charge.succeeded", object_id="ch_B"),
                 make_event("charge.succeeded", object_id="ch_A")]
        for body in sends:
            deliver(layout, body)
        poison_id, b1, a2, b2, a3 = (orjson.loads(b)["id"] for b in sends)
        layout.poller.drain()
        assert log == [("poison", 1), ("applied", b1), ("applied", b2),  # B at once
                       ("poison", 2), ("poison", 3),  # A's later events held back meanwhile
                       ("applied", a2), ("applied", a3)]  # then in order, once it is spent
        assert layout.effect_counts() == {b1: 1, b2: 1, a2: 1, a3: 1}
        assert [letter.event_id for letter in layout.queue.dead_letters()] == [poison_id]
        assert layout.inbox.get(poison_id).status == Status.DEAD
    finally:
        layout.close()


def test_large_dead_letters_are_redriven_in_batches_sqs_takes(layout: SqsLayout) -> None:
    """A batch of SQS messages carries 1 MiB in all: three dead 500 KB events in one
    SendMessageBatch were refused, and `ichido dlq retry` with them."""
    bodies = [large_event() for _ in range(3)]
    for body in bodies:  # inline: the queue takes 1 MiB messages
        boto3.client("sqs").send_message(QueueUrl=layout.dlq_url, MessageBody=body.decode())
    assert layout.queue.redrive() == 3
    layout.poller.drain()
    assert layout.effect_counts() == {orjson.loads(b)["id"]: 1 for b in bodies}
    assert layout.queue.dead_letters() == []
