"""Thin events on the AWS layouts (SQS + DynamoDB, SQS + PostgreSQL, Streams + DynamoDB): the
Lambda receiver takes them, the worker completes them through the official SDK before the
ledger's transaction and keeps what it read (a retry reads the store), a failed read is a failed
attempt (``event_expired`` dead at once), and a snapshot and its thin twin apply once, the
change's key taken in the same transaction as the marker and the handlers' writes."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Iterator

import boto3
import orjson
import pytest

from ichido.aws.envelopes import from_sqs_record
from ichido.aws.fetch import DynamoFetched
from ichido.aws.worker import EventApplier, Outcome
from ichido.db.dynamodb import DynamoDatabase
from ichido.event import Event, parse_delivery
from ichido.queue.base import Status
from tests.aws.conftest import make_queues
from tests.aws.support import SqsLayout, StreamsLayout, dynamodb_url, function_url_event
from tests.aws.thin_support import PING, SUCCEEDED, ThinStripe, eventbridge_envelope
from tests.support import migrate_effects
from tests.thin.support import make_thin

LAYOUTS = ["sqs-dynamodb", "sqs-postgres", "streams-dynamodb"]


class Aws:
    """One AWS layout with a handler of ``payment_intent.succeeded`` that notes what it saw
    (``seen``, every run, rolled back or not) and writes one effect per application."""

    def __init__(self, kind: str, stripe: ThinStripe, request: pytest.FixtureRequest,
                 attempts: int = 3) -> None:
        self.kind, self.stripe = kind, stripe
        self.seen: list[tuple[str, str, Any, Any, int]] = []
        self.fail_attempts: set[int] = set()
        if kind == "streams-dynamodb":
            self.layout: Any = StreamsLayout(max_attempts=attempts)
        else:
            url = dynamodb_url() if kind == "sqs-dynamodb" else \
                request.getfixturevalue("postgres_url")
            if kind == "sqs-postgres":
                migrate_effects(url)
            self.layout = SqsLayout(url, *make_queues(max_receive_count=attempts),
                                    max_receive_count=attempts)
        self.layout.settings = self.layout.settings.with_(webhook_secrets=stripe.secrets)
        stripe.wire(self.layout.worker.applier, self.layout.ledger)
        self.layout.handlers.on(SUCCEEDED)(self.handle)

    def handle(self, event: Event, tx: Any) -> None:
        self.seen.append((event.id, event.shape, event.object.get("id"),
                          event.object.get("status"), event.attempt))
        if event.attempt in self.fail_attempts:
            raise RuntimeError(f"planned failure on attempt {event.attempt}")
        self.layout.effects.record(event, tx)

    def deliver(self, body: bytes) -> dict:
        receiver = self.layout.receiver()
        answer = receiver(function_url_event(body, self.stripe.headers(body)), None)
        assert answer["statusCode"] == 200, answer
        return orjson.loads(answer["body"])

    def drain(self) -> None:
        self.layout.poller.drain()

    def get(self, event_id: str) -> Any:
        return self.layout.inbox.get(event_id)

    def effects(self) -> Counter:
        return self.layout.effects.counts(self.layout.inbox)

    def stats(self) -> dict[str, int]:
        return self.layout.inbox.stats()

    def close(self) -> None:
        if hasattr(self.layout, "close"):
            self.layout.close()


@pytest.fixture
def stripe_world() -> Iterator[ThinStripe]:
    world = ThinStripe()
    yield world
    world.close()


@pytest.fixture(params=LAYOUTS)
def aws_thin(request: pytest.FixtureRequest, aws: str,
             stripe_world: ThinStripe) -> Iterator[Aws]:
    built = Aws(request.param, stripe_world, request)
    yield built
    built.close()


def id_of(body: bytes) -> str:
    return str(orjson.loads(body)["id"])


def test_a_thin_event_through_the_lambda_receiver_is_fetched_and_applied_once(
        aws_thin: Aws) -> None:
    world = aws_thin.stripe
    intent = world.pay()
    thin = world.thin()
    assert aws_thin.deliver(thin) == {"id": id_of(thin), "status": "accepted"}
    aws_thin.drain()
    assert aws_thin.seen == [(id_of(thin), "thin", intent, "succeeded", 1)]
    assert aws_thin.get(id_of(thin)).status == Status.PROCESSED
    # a v1 notification without data is the whole event: only its object is read
    assert world.paths() == [f"v1/payment_intents/{intent}"]
    aws_thin.deliver(thin)  # Stripe's redelivery: a durable duplicate, nothing read again
    aws_thin.drain()
    assert list(aws_thin.effects().values()) == [1] and len(world.paths()) == 1


@pytest.mark.parametrize("kind", [f"v1.{SUCCEEDED}", PING])
def test_a_retry_reads_what_was_stored_not_stripe(aws_thin: Aws, kind: str) -> None:
    """What is kept and not read again: a v1 event's object; a v2 event's event."""
    world = aws_thin.stripe
    aws_thin.fail_attempts = {1}
    if kind == PING:
        aws_thin.layout.handlers.on(PING)(aws_thin.handle)
        thin, seen = world.ping(), (None, None)
        reads = [f"v2/core/events/{id_of(thin)}"]
    else:
        intent = world.pay()
        thin, seen = world.thin(), (intent, "succeeded")
        reads = [f"v1/payment_intents/{intent}"]
    aws_thin.deliver(thin)
    aws_thin.drain()
    assert [s[4] for s in aws_thin.seen] == [1, 2]
    assert {s[2:4] for s in aws_thin.seen} == {seen}
    assert world.paths() == reads
    record = aws_thin.get(id_of(thin))
    assert record.status == Status.PROCESSED and [f[0] for f in record.failures] == [1]
    assert list(aws_thin.effects().values()) == [1]


@pytest.mark.parametrize("first", ["snapshot", "thin"])
def test_a_snapshot_and_its_thin_twin_apply_once(aws_thin: Aws, first: str) -> None:
    world = aws_thin.stripe
    world.pay()
    snapshot, thin = world.snapshot(), world.thin()
    assert orjson.loads(thin)["snapshot_event"] == id_of(snapshot)
    order = [snapshot, thin] if first == "snapshot" else [thin, snapshot]
    for body in order:
        aws_thin.deliver(body)
        aws_thin.drain()
    applied, twin = (id_of(b) for b in order)
    assert list(aws_thin.effects()) == [applied] and aws_thin.effects()[applied] == 1
    record = aws_thin.get(twin)
    assert record.status == Status.TWIN and record.last_error == (
        f"twin of {applied}, which applied the change")
    stats = aws_thin.stats()
    assert (stats["duplicates_twin"], stats["unique"], stats["processed"]) == (1, 2, 2)
    if first == "snapshot":
        assert world.paths() == []  # the twin had applied: nothing was read


def test_a_failed_attempt_leaves_the_change_free_for_its_twin(aws_thin: Aws) -> None:
    """The snapshot fails its first attempt: its change key rolls back with it, so the thin
    twin that comes next applies, and the snapshot's retry finds the change applied."""
    world = aws_thin.stripe
    world.pay()
    snapshot, thin = world.snapshot(), world.thin()
    aws_thin.fail_attempts = {1}
    applier = aws_thin.layout.worker.applier
    assert applier.apply(parse_delivery(snapshot), 1, final=False) is Outcome.FAILED
    aws_thin.fail_attempts = set()
    assert applier.apply(parse_delivery(thin), 1, final=False) is Outcome.APPLIED
    assert applier.apply(parse_delivery(snapshot), 2, final=False) is Outcome.TWIN
    assert dict(aws_thin.effects()) == {id_of(thin): 1}
    assert aws_thin.get(id_of(snapshot)).status == Status.TWIN


def test_a_rate_limited_read_is_a_failed_attempt_retried(aws_thin: Aws) -> None:
    world = aws_thin.stripe
    intent = world.pay()
    thin = world.thin()
    world.emulator.rate_limit(1)  # the first read answers 429
    aws_thin.deliver(thin)
    aws_thin.drain()
    record = aws_thin.get(id_of(thin))
    assert record.status == Status.PROCESSED
    assert [(f[0], f[2].split(":")[0]) for f in record.failures] == [(1, "rate_limited")]
    assert aws_thin.seen == [(id_of(thin), "thin", intent, "succeeded", 2)]
    read = f"v1/payment_intents/{intent}"  # the only read of a v1 event without data
    assert world.paths() == [read, read]


@pytest.mark.parametrize("kind", ["v1.invoice.upcoming", PING])
def test_an_expired_thin_event_is_dead_at_once(aws_thin: Aws, kind: str) -> None:
    """Types whose event is read: a v1 type with ``data`` (``invoice.upcoming``), a v2 one."""
    aws_thin.layout.handlers.on(kind.removeprefix("v1."))(aws_thin.handle)
    old = make_thin(kind, created=int(time.time()) - 40 * 86400)
    aws_thin.stripe.http.sent.clear()  # the destination's creation is not a read
    aws_thin.deliver(old)
    aws_thin.drain()
    dead = aws_thin.get(id_of(old))
    assert dead.status == Status.DEAD and dead.last_error.startswith("event_expired: ")
    assert [f[0] for f in dead.failures] == [1] and aws_thin.seen == []
    assert aws_thin.stripe.paths() == [f"v2/core/events/{id_of(old)}"]
    if aws_thin.kind.startswith("sqs"):  # moved to the DLQ by the worker, after one receive
        letters = aws_thin.layout.queue.dead_letters()
        assert [letter.event_id for letter in letters] == [id_of(old)]
        assert aws_thin.layout.queue.depth()["pending"] == 0


@pytest.mark.parametrize("kind", ["sqs-dynamodb", "sqs-postgres"])
def test_a_thin_event_in_an_eventbridge_envelope_is_applied(
        kind: str, request: pytest.FixtureRequest, aws: str, stripe_world: ThinStripe) -> None:
    built = Aws(kind, stripe_world, request)
    try:
        intent = stripe_world.pay()
        thin = stripe_world.thin()
        envelope = eventbridge_envelope(thin)
        unwrapped = stripe_world.sdk.parse_event_notification_without_verification(envelope)
        delivery = from_sqs_record({"body": envelope})
        assert (delivery.id, delivery.type, delivery.object_id) == (
            unwrapped.id, unwrapped.type, intent)
        boto3.client("sqs").send_message(QueueUrl=built.layout.queue_url, MessageBody=envelope)
        built.drain()
        assert built.seen == [(id_of(thin), "thin", intent, "succeeded", 1)]
        assert built.get(id_of(thin)).status == Status.PROCESSED
    finally:
        built.close()


def test_twins_racing_to_commit_on_dynamodb_apply_once(
        aws: str, stripe_world: ThinStripe, request: pytest.FixtureRequest) -> None:
    """Both pass every read before the commit; the snapshot commits while the thin event's
    handlers run: the thin event's conditional put of the change cancels its transaction,
    its handlers' writes with it, and it is finished as the twin."""
    built = Aws("sqs-dynamodb", stripe_world, request)
    stripe_world.pay()
    snapshot, thin = stripe_world.snapshot(), stripe_world.thin()
    applier: EventApplier = built.layout.worker.applier
    other = EventApplier(applier.handlers, built.layout.ledger)

    def racing(event: Event, tx: Any) -> None:
        if event.shape == "thin":
            assert other.apply(parse_delivery(snapshot), 1, final=False) is Outcome.APPLIED

    built.layout.handlers.on(SUCCEEDED)(racing)
    assert applier.apply(parse_delivery(thin), 1, final=False) is Outcome.TWIN
    assert dict(built.effects()) == {id_of(snapshot): 1}
    record = built.get(id_of(thin))
    assert record.status == Status.TWIN and id_of(snapshot) in record.last_error
    stats = built.stats()
    assert (stats["received"], stats["unique"], stats["duplicates_twin"]) == (2, 2, 1)
    table = DynamoDatabase.from_url(built.layout.database_url)
    assert DynamoFetched(table).holder(id_of(snapshot)) == id_of(snapshot)


@pytest.mark.parametrize("kind", ["sqs-dynamodb", "streams-dynamodb"])
def test_a_thin_twin_committing_while_its_snapshot_runs_makes_the_snapshot_the_twin(
        kind: str, aws: str, stripe_world: ThinStripe, request: pytest.FixtureRequest) -> None:
    """The other order of the race: the thin event's claim on the snapshot's marker item
    commits while the snapshot's handlers run, so the snapshot's marker is refused; the item
    it was refused by names the thin event, and the snapshot is finished as its twin (no
    durable duplicate counted, nothing of its handlers' written)."""
    built = Aws(kind, stripe_world, request)
    try:
        stripe_world.pay()
        snapshot, thin = stripe_world.snapshot(), stripe_world.thin()
        built.deliver(snapshot)  # both received (on Streams: their items), not applied yet
        built.deliver(thin)
        applier: EventApplier = built.layout.worker.applier
        other = EventApplier(applier.handlers, built.layout.ledger, fetch=applier.fetch)

        def racing(event: Event, tx: Any) -> None:
            if event.shape == "snapshot":
                assert other.apply(parse_delivery(thin), 1, final=False) is Outcome.APPLIED

        built.layout.handlers.on(SUCCEEDED)(racing)  # after ``handle``, which records
        assert applier.apply(parse_delivery(snapshot), 1, final=False) is Outcome.TWIN
        assert dict(built.effects()) == {id_of(thin): 1}
        record = built.get(id_of(snapshot))
        assert record.status == Status.TWIN and record.last_error == (
            f"twin of {id_of(thin)}, which applied the change")
        stats = built.stats()
        assert (stats["unique"], stats["duplicates_twin"], stats["duplicates_durable"]) == (
            2, 1, 0)
    finally:
        built.close()


def test_a_thin_event_applied_before_its_snapshot_came_counts_exactly(aws_thin: Aws) -> None:
    """Until the snapshot comes, its change's claim is no event; when it comes it is the
    twin, and a redelivery of it after that is a durable duplicate."""
    world = aws_thin.stripe
    world.pay()
    snapshot, thin = world.snapshot(), world.thin()
    aws_thin.deliver(thin)
    aws_thin.drain()
    stats = aws_thin.stats()
    assert (stats["received"], stats["unique"], stats["processed"]) == (1, 1, 1)
    assert aws_thin.get(id_of(snapshot)) is None
    assert [r.id for r in aws_thin.layout.inbox.list()] == [id_of(thin)]
    aws_thin.deliver(snapshot)
    aws_thin.drain()
    again = aws_thin.layout.receiver()  # its own seen tier: the copy goes on to the worker
    answer = again(function_url_event(snapshot, world.headers(snapshot)), None)
    assert answer["statusCode"] == 200
    aws_thin.drain()
    assert aws_thin.get(id_of(snapshot)).status == Status.TWIN
    stats = aws_thin.stats()
    assert (stats["received"], stats["unique"], stats["duplicates_twin"],
            stats["duplicates_durable"]) == (3, 2, 1, 1)
    assert list(aws_thin.effects().values()) == [1]
