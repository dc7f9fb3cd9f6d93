"""The fetch stage: a thin event is completed through the official SDK before its transaction,
what was read is stored and read once, failed reads are failed attempts, and events of one
object share one read of it. Against the local Stripe over loopback HTTP."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import httpx
import orjson
import pytest
import stripe
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ichido.config import Settings
from ichido.inbox import EventFilter
from ichido.recovery.replay import Replay
from ichido.serving import ThreadedServer
from ichido.thin.reader import Reader, ReadPace, event_read_needed
from tests.support import free_port, wait_until
from tests.thin.support import make_thin
from tests.thin.world import ThinWorld, record


@pytest.fixture
def thin_only(settings: Settings) -> Iterator[ThinWorld]:
    world = ThinWorld(settings, snapshots=False)
    yield world
    world.close()


PING = "v2.core.event_destination.ping"


@pytest.fixture
def ping_world(settings: Settings) -> Iterator[ThinWorld]:
    """The local Stripe sends to a recorder; the test delivers what it chooses (``ping``)."""
    world = ThinWorld(settings, snapshots=False, hold=True)
    yield world
    world.close()


def ping(world: ThinWorld, **fields: object) -> str:
    """Ping the world's destination and deliver the ``v2.core.event_destination.ping`` it sent
    (with ``fields`` over it); its id."""
    world.sdk.v2.core.event_destinations.ping(world.destination.id)
    world.settle()
    [body] = world.recorded(PING)
    if fields:
        body = orjson.dumps({**orjson.loads(body), **fields})
    world.deliver(body)
    world.http.sent.clear()
    return str(orjson.loads(body)["id"])


def test_a_v1_thin_event_is_completed_by_one_read_of_its_object(thin_only: ThinWorld) -> None:
    """A ``v1.`` notification without ``data`` is the whole event: only its object is read."""
    world = thin_only
    world.app.on("payment_intent.succeeded")(record)
    intent = world.pay()
    world.settle()
    assert world.drain() == 2  # created (no handler: ignored, never fetched) and succeeded
    [(event_id, kind, shape, object_id, status, attempt)] = world.seen()
    assert (kind, shape, object_id, status, attempt) == (
        "payment_intent.succeeded", "thin", intent, "succeeded", 1)
    stored = world.app.inbox.get(event_id)
    assert stored is not None and stored.status == "processed"
    assert orjson.loads(stored.body)["type"] == "v1.payment_intent.succeeded"
    assert world.http.paths() == [f"v1/payment_intents/{intent}"]
    with world.app.database.reading() as tx:
        row = tx.execute("SELECT event, object, has_object FROM ichido_fetched"
                         " WHERE event_id = ?", (event_id,)).fetchone()
    assert orjson.loads(bytes(row[0])) == {} and row[2] == 1  # no event read to keep
    assert orjson.loads(bytes(row[1]))["status"] == "succeeded"


def test_a_v2_thin_event_is_completed_by_reading_the_event(ping_world: ThinWorld) -> None:
    """A ``v2.`` event may carry anything in ``data``: the event is read (and kept), and no
    object."""
    world = ping_world
    world.app.on(PING)(record)
    event_id = ping(world)
    world.drain()
    assert [row[:3] for row in world.seen()] == [(event_id, PING, "thin")]
    assert world.app.inbox.get(event_id).status == "processed"
    assert world.http.paths() == [f"v2/core/events/{event_id}"]
    with world.app.database.reading() as tx:
        row = tx.execute("SELECT event, has_object FROM ichido_fetched"
                         " WHERE event_id = ?", (event_id,)).fetchone()
    assert orjson.loads(bytes(row[0]))["id"] == event_id and row[1] == 0


def drain_until(world: ThinWorld, event_id: str, *statuses: str) -> str:
    """Run the worker until ``event_id`` reaches one of ``statuses`` (retries wait for their
    backoff, a few hundredths of a second in these settings)."""
    def reached() -> str | None:
        world.drain()
        record = world.app.inbox.get(event_id)
        return record.status if record is not None and record.status in statuses else None
    return wait_until(reached, message=f"{event_id} to be {' or '.join(statuses)}")


def thin_id(world: ThinWorld, kind: str = "v1.payment_intent.succeeded") -> str:
    [found] = [r.id for r in world.app.inbox.list(limit=1000) if r.type == kind]
    return found


@pytest.mark.parametrize("kind", ["v1.payment_intent.succeeded", PING])
def test_a_retry_and_a_replay_read_nothing_again_and_a_replay_with_refetch_does(
        settings: Settings, kind: str) -> None:
    """For a v1 event the read kept is its object's; for a v2 event, the event's."""
    world = ThinWorld(settings, snapshots=False, hold=kind == PING)
    try:
        @world.app.on(kind.removeprefix("v1."))
        def fails_once(event, tx) -> None:
            record(event, tx)
            if event.attempt == 1:
                raise RuntimeError("the first attempt fails after reading")

        if kind == PING:
            event_id, object_id = ping(world), None
            reads = [f"v2/core/events/{event_id}"]
        else:
            object_id = world.pay()
            world.settle()
            event_id = thin_id(world)
            reads = [f"v1/payment_intents/{object_id}"]
        world.app.worker().run_once()
        assert world.app.inbox.get(event_id).status == "retrying"
        assert world.http.paths() == reads
        assert drain_until(world, event_id, "processed") == "processed"
        assert world.http.paths() == reads  # the retry read the store

        where = EventFilter(statuses=("processed",), types=(kind,))
        Replay.start(world.app.inbox, where, force=True).run()
        assert drain_until(world, event_id, "processed") and world.http.paths() == reads
        Replay.start(world.app.inbox, where, force=True, refetch=True).run()
        assert drain_until(world, event_id, "processed") and world.http.paths() == reads * 2
        # the failed attempt's row rolled back with it: the retry and two replays applied
        assert [row[2:4] for row in world.seen()] == [("thin", object_id)] * 3
    finally:
        world.close()


def test_events_of_one_object_due_together_share_one_read_of_it(thin_only: ThinWorld) -> None:
    """Created and succeeded, due together: one read for both (v1 events without data are
    whole as notified), so a stream of bursts per object costs under one read an event."""
    world = thin_only
    world.app.on("payment_intent.*")(record)
    intent = world.pay()
    world.settle()
    assert world.drain() == 2
    assert world.http.paths() == [f"v1/payment_intents/{intent}"]
    assert sorted(row[1] for row in world.seen()) == ["payment_intent.created",
                                                      "payment_intent.succeeded"]


def test_the_fetch_sends_the_notifications_context(settings: Settings) -> None:
    """A notification acting for a connected account: its reads carry its Stripe-Context, the
    object's for a v1 event, the event's for a v2 one. (The local Stripe serves one account and
    sends no context: the notification is built from the event it lists, or the ping it sent,
    as Stripe would push it for a connected account.)"""
    world = ThinWorld(settings, snapshots=False, thin_types=["v1.payment_intent.created"],
                      hold=True)
    try:
        world.app.on("payment_intent.succeeded")(record)
        world.app.on(PING)(record)
        world.pay()
        world.settle()
        [listed] = world.sdk.v2.core.events.list({"types": ["v1.payment_intent.succeeded"]}).data
        notification = {name: listed.to_dict().get(name) for name in (
            "id", "object", "type", "created", "livemode", "reason", "related_object",
            "snapshot_event")}
        world.deliver(orjson.dumps({**notification, "context": "acct_1IchidoConnected"}))
        pinged = ping(world, context="acct_1IchidoConnected")
        world.drain()
        assert sorted(row[0] for row in world.seen()) == sorted([listed.id, pinged])
        assert sorted((url.split("/v")[-1], headers.get("Stripe-Context"))
                      for _, url, headers in world.http.sent) == [
            (f"1/payment_intents/{listed.related_object.id}", "acct_1IchidoConnected"),
            (f"2/core/events/{pinged}", "acct_1IchidoConnected")]
    finally:
        world.close()


def post_thin(world: ThinWorld, **fields: object) -> str:
    body = make_thin(**fields)  # type: ignore[arg-type]
    with httpx.Client() as client:
        answer = client.post(world.url, content=body, headers=world.thin_headers(body))
    assert answer.status_code == 200, answer.text
    return str(orjson.loads(body)["id"])


def test_a_429_is_a_failed_attempt_retried_until_the_read_succeeds(thin_only: ThinWorld) -> None:
    world = thin_only
    world.app.on("payment_intent.succeeded")(record)
    world.pay()
    world.settle()
    world.emulator.rate_limit(1)
    world.app.worker().run_once()  # one attempt (a drain could reach the retry too)
    stored = world.app.inbox.get(event_id := thin_id(world))
    assert stored.status == "retrying" and stored.last_error.startswith("rate_limited: ")
    assert drain_until(world, event_id, "processed") == "processed"
    assert [f[0] for f in world.app.inbox.get(event_id).failures] == [1]


def test_unreachable_stripe_is_retried_then_dead_lettered_with_the_reason(
        settings: Settings) -> None:
    world = ThinWorld(settings.with_(max_attempts=2), snapshots=False)
    try:
        world.app.on("payment_intent.succeeded")(record)
        world.pay()
        world.settle()
        world.app.reader = Reader(20, client=stripe.StripeClient(
            "sk_test_x", base_addresses={"api": f"http://127.0.0.1:{free_port()}"},
            max_network_retries=0))
        event_id = thin_id(world)
        assert drain_until(world, event_id, "dead") == "dead"
        dead = world.app.inbox.get(event_id)
        assert dead.last_error.startswith("fetch_failed: network error")
        assert [f[0] for f in dead.failures] == [1, 2] and world.seen() == []
    finally:
        world.close()


@pytest.mark.parametrize("kind", ["v1.invoice.upcoming", PING])
def test_a_404_past_stripes_30_days_is_dead_at_once_and_a_recent_one_is_retried(
        thin_only: ThinWorld, kind: str) -> None:
    """Types whose event is read: a v1 type with ``data`` (``invoice.upcoming``), a v2 one."""
    world = thin_only
    world.app.on(kind.removeprefix("v1."))(record)
    old = post_thin(world, type=kind, created=int(time.time()) - 40 * 86400)
    recent = post_thin(world, type=kind, created=int(time.time()) - 3600)
    world.drain()
    expired, missing = world.app.inbox.get(old), world.app.inbox.get(recent)
    assert (expired.status, expired.last_error.split(":")[0]) == ("dead", "event_expired")
    assert (missing.status, missing.last_error.split(":")[0]) == ("retrying", "fetch_failed")
    assert sorted(world.http.paths()) == sorted([f"v2/core/events/{old}",
                                                 f"v2/core/events/{recent}"])


def test_retry_after_is_honoured(thin_only: ThinWorld) -> None:
    """A 429 with ``Retry-After: 600`` waits at least that long, however short the backoff."""
    async def busy(request: Any) -> Response:
        return JSONResponse({"error": {"type": "rate_limit", "code": "rate_limit",
                                       "message": "slow down"}}, status_code=429,
                            headers={"Retry-After": "600"})

    stripe_busy = ThreadedServer(Starlette(routes=[Route("/{path:path}", busy)])).start()
    world = thin_only
    try:
        world.app.on("payment_intent.succeeded")(record)
        world.app.reader = Reader(20, client=stripe.StripeClient(
            "sk_test_x", base_addresses={"api": stripe_busy.url}, max_network_retries=0))
        event_id = post_thin(world)
        before = time.time()
        world.drain()
        waiting = world.app.inbox.get(event_id)
        assert waiting.status == "retrying" and waiting.last_error.startswith("rate_limited")
        assert waiting.next_attempt_at >= before + 600 > before + settings_cap(world)
    finally:
        stripe_busy.stop()


def settings_cap(world: ThinWorld) -> float:
    return world.app.settings.retry_cap_seconds


def test_reads_are_paced_by_a_setting_under_stripes_sandbox_limit() -> None:
    assert Settings().fetch_rate < 25  # Stripe's sandbox allows 25 reads a second
    assert Settings.from_env({"ICHIDO_FETCH_RATE": "5"}).fetch_rate == 5
    now, slept = [100.0], []
    pace = ReadPace(5, clock=lambda: now[0], sleep=slept.append)
    for _ in range(10):  # ten reads asked for at one instant
        pace.wait()
    assert slept == pytest.approx([0.2 * n for n in range(1, 10)])


@pytest.mark.parametrize(("kind", "needed"), [
    ("v1.payment_intent.succeeded", False), ("v1.customer.created", False),  # no data: whole
    ("v1.invoice.upcoming", True), ("v1.billing.meter.error_report_triggered", True),  # data
    ("v2.core.event_destination.ping", True), ("v2.ichido.unknown_type", True),
    ("v1.ichido.unknown_type", True)])  # the SDK does not know it: it may carry anything
def test_the_event_is_read_unless_a_v1_notification_is_the_whole_event(
        kind: str, needed: bool) -> None:
    assert event_read_needed(kind) is needed


def test_reads_happen_before_the_handlers_transaction_never_in_it(thin_only: ThinWorld) -> None:
    """While the object's read is held at the local Stripe, another writer can lock the event's
    row at once: the worker holds no transaction while it reads."""
    world = thin_only
    world.app.on("payment_intent.succeeded")(record)
    world.pay()
    world.settle()
    event_id = thin_id(world)
    world.emulator.api_gate = threading.Event()
    worker = threading.Thread(target=world.drain)
    worker.start()
    try:
        wait_until(lambda: any("payment_intents" in url for _, url, _ in world.http.sent),
                   message="the object's read to be under way")
        with world.app.database.transaction() as tx:
            if world.app.database.engine == "postgresql":
                tx.execute("SET LOCAL lock_timeout = '5s'")  # a held row would fail this
            assert tx.execute("UPDATE ichido_events SET last_error = last_error WHERE id = ?",
                              (event_id,)).rowcount == 1
    finally:
        world.emulator.api_gate.set()
        worker.join(60)
    assert world.app.inbox.get(event_id).status == "processed"


def test_prune_drops_what_was_fetched_with_the_body(thin_only: ThinWorld) -> None:
    world = thin_only
    world.app.on("payment_intent.succeeded")(record)
    world.pay()
    world.settle()
    world.drain()
    event_id = thin_id(world)
    with world.app.database.reading() as tx:
        assert tx.execute("SELECT count(*) FROM ichido_fetched").fetchone()[0] == 1
    assert world.app.inbox.prune(-1) == 2  # everything finished, however young
    with world.app.database.reading() as tx:
        assert tx.execute("SELECT count(*) FROM ichido_fetched").fetchone()[0] == 0
    assert world.app.inbox.get(event_id).body == b""  # the id's tombstone stays
