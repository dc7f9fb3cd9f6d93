"""The stale-event guard: subscription events in every order, with duplicates and same-second
ties, end in the state the in-order run ends in, and stale ones never reach the handler."""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
import pytest

from ichido.event import Event, parse_delivery
from ichido.handlers import HandlerRegistry
from ichido.queue.base import Status
from ichido.guard import order_key
from tests.support import in_process_app

T0 = 1_760_000_000
SUBS_SCHEMA = [("test_subs", 1, [
    "CREATE TABLE subs (id TEXT PRIMARY KEY, status TEXT NOT NULL, event_id TEXT NOT NULL)",
    "CREATE TABLE sub_applied (sub_id TEXT NOT NULL, event_id TEXT NOT NULL)",
])]


def sub_event(n: int, sub_id: str, kind: str, created: int, status: str,
              **fields: Any) -> bytes:
    obj = {"id": sub_id, "object": "subscription", "status": status, "created": T0, **fields}
    return orjson.dumps({"id": f"evt_{sub_id}_{n}", "object": "event", "created": created,
                         "type": f"customer.subscription.{kind}", "data": {"object": obj},
                         "livemode": False, "pending_webhooks": 1, "api_version": "2026-10-28"})


def story(sub_id: str) -> list[bytes]:
    """In order. Ties: created + updated in one second (cashier #1201), and a last update and
    the deletion in one second."""
    return [
        sub_event(1, sub_id, "created", T0, "incomplete"),
        sub_event(2, sub_id, "updated", T0, "active", current_period_start=T0),
        sub_event(3, sub_id, "updated", T0 + 100, "past_due", current_period_start=T0),
        sub_event(4, sub_id, "updated", T0 + 150, "active", current_period_start=T0 + 150),
        sub_event(5, sub_id, "deleted", T0 + 150, "canceled", current_period_start=T0 + 150,
                  canceled_at=T0 + 150, ended_at=T0 + 150),
    ]


def one_second_story(sub_id: str) -> list[bytes]:
    """Everything in one second: only the type's lifecycle and the status rank order them."""
    return [
        sub_event(1, sub_id, "created", T0, "incomplete"),
        sub_event(2, sub_id, "updated", T0, "trialing"),
        sub_event(3, sub_id, "updated", T0, "active"),
        sub_event(4, sub_id, "deleted", T0, "canceled", canceled_at=T0),
    ]


@pytest.fixture
def app(settings):
    app = in_process_app(settings)
    app.schema.extend(SUBS_SCHEMA)
    app.migrate()

    @app.on("customer.subscription.*", latest_only=True)
    def apply(event, tx) -> None:
        tx.execute("INSERT INTO subs (id, status, event_id) VALUES (?, ?, ?) ON CONFLICT (id)"
                   " DO UPDATE SET status = excluded.status, event_id = excluded.event_id",
                   (event.object["id"], event.object["status"], event.id))
        tx.execute("INSERT INTO sub_applied (sub_id, event_id) VALUES (?, ?)",
                   (event.object["id"], event.id))

    yield app
    app.close()


def deliver_in_orders(app, orders: dict[str, list[bytes]]) -> None:
    """Step k delivers the k-th body of every order, then the worker drains: each object sees
    its events arrive, and apply, in its own order (many objects at once, as in production)."""
    worker = app.worker()
    for step in range(max(len(o) for o in orders.values())):
        app.inbox.accept([parse_delivery(o[step]) for o in orders.values() if step < len(o)])
        worker.drain()


def check_against_in_order(app, stories: dict[str, list[bytes]]) -> None:
    with app.database.reading() as tx:
        final = dict((row[0], row[1:]) for row in tx.execute(
            "SELECT id, status, event_id FROM subs").fetchall())
        applied = tx.execute("SELECT sub_id, event_id FROM sub_applied").fetchall()
    for sub_id, in_order in stories.items():
        last = Event.from_body(in_order[-1])
        assert final[sub_id] == (last.object["status"], last.id), sub_id
    position = {Event.from_body(b).id: i for bodies in stories.values()
                for i, b in enumerate(bodies)}
    seen: dict[str, int] = {}
    for sub_id, event_id in applied:  # rows in commit order: every application moved forward
        assert position[event_id] > seen.get(sub_id, -1), (sub_id, event_id)
        seen[sub_id] = position[event_id]


def test_every_order_with_duplicates_ends_in_the_in_order_state(app) -> None:
    rng = random.Random(13)
    stories, orders = {}, {}
    for n, perm in enumerate(itertools.permutations(range(5))):
        sub_id = f"sub_p{n:03d}"
        events = story(sub_id)
        stories[sub_id] = events
        order = [events[i] for i in perm]
        order.insert(rng.randrange(len(order) + 1), events[n % 5])  # a redelivery, anywhere
        orders[sub_id] = order
    deliver_in_orders(app, orders)
    check_against_in_order(app, stories)
    stats = app.inbox.stats()
    assert stats["duplicates_durable"] == 120
    assert stats["stale"] > 0
    assert stats["processed"] == 120 * 5
    assert app.inbox.get("evt_sub_p119_5").status in (Status.PROCESSED, Status.STALE)


def test_same_second_events_in_every_order(app) -> None:
    stories, orders = {}, {}
    for n, perm in enumerate(itertools.permutations(range(4))):
        sub_id = f"sub_s{n:02d}"
        stories[sub_id] = one_second_story(sub_id)
        orders[sub_id] = [stories[sub_id][i] for i in perm]
    deliver_in_orders(app, orders)
    check_against_in_order(app, stories)


def test_indistinguishable_ties_agree_whatever_the_order(app) -> None:
    """Two updates of one second that differ only in fields the guard does not read: the event
    id decides (arbitrary, not chronological), so every order ends on the same event."""
    orders = {}
    for n, perm in enumerate(itertools.permutations(range(3))):
        sub_id = f"sub_t{n}"
        bodies = [sub_event(i, sub_id, "updated", T0, "active", metadata={"v": str(i)})
                  for i in range(3)]
        orders[sub_id] = [bodies[i] for i in perm]
    deliver_in_orders(app, orders)
    with app.database.reading() as tx:
        winners = {row[0][len("evt_"):].rsplit("_", 1)[1]
                   for row in tx.execute("SELECT event_id FROM subs").fetchall()}
    assert winners == {"2"}  # evt_…_2 sorts last


def test_stale_events_are_marked_and_only_guarded_handlers_skip_them(settings) -> None:
    app = in_process_app(settings)
    calls: list[tuple[str, str]] = []
    app.on("customer.subscription.updated", latest_only=True)(
        lambda event, tx: calls.append(("guarded", event.id)))
    newer, older = (sub_event(2, "sub_x", "updated", T0 + 5, "active"),
                    sub_event(1, "sub_x", "updated", T0, "trialing"))
    for body in (newer, older):
        app.inbox.accept([parse_delivery(body)])
        app.worker().drain()
    assert calls == [("guarded", "evt_sub_x_2")]
    assert app.inbox.get("evt_sub_x_1").status == Status.STALE
    assert app.inbox.stats()["stale"] == 1

    app.on("customer.subscription.updated")(lambda event, tx: calls.append(("plain", event.id)))
    app.inbox.requeue(["evt_sub_x_1"], statuses=[Status.STALE])
    app.worker().drain()
    assert calls[-1] == ("plain", "evt_sub_x_1")  # the unguarded handler still sees it
    assert app.inbox.get("evt_sub_x_1").status == Status.PROCESSED
    app.close()


def test_wildcard_patterns_match_types() -> None:
    registry = HandlerRegistry()
    seen = []
    registry.on("customer.subscription.*")(lambda e, tx: seen.append("sub"))
    registry.on("*")(lambda e, tx: seen.append("all"))
    assert len(registry.for_type("customer.subscription.deleted")) == 2
    assert len(registry.for_type("customer.created")) == 1


def test_the_tie_rule_is_documented_order() -> None:
    created = Event.from_body(sub_event(9, "sub_o", "created", T0, "active"))
    updated = Event.from_body(sub_event(1, "sub_o", "updated", T0, "incomplete"))
    deleted = Event.from_body(sub_event(5, "sub_o", "deleted", T0, "incomplete"))
    later = Event.from_body(sub_event(0, "sub_o", "created", T0 + 1, "incomplete"))
    assert order_key(created) < order_key(updated) < order_key(deleted) < order_key(later)


def test_refetch_hands_guarded_handlers_the_object_as_the_api_has_it(settings,
                                                                     stripe_world) -> None:
    """For types whose snapshots cannot be ordered, the handler gets the object afresh from
    the API (the emulator, over HTTP, through the SDK); over its budget it retries later."""
    import stripe

    from ichido.recovery.fetch import StripeFetcher
    from tests.recovery.conftest import KEY

    emulator, proxy = stripe_world
    client = stripe.StripeClient(KEY, base_addresses={"api": proxy.url})
    pi = client.v1.payment_intents.create(params={
        "amount": 1500, "currency": "jpy", "confirm": True, "allowed_payment_method_types": ["card"],
        "payment_method": "pm_card_visa"})
    created = next(e for e in emulator.events() if e["type"] == "payment_intent.created")
    assert created["data"]["object"]["status"] != "succeeded"  # the snapshot is old news

    app = in_process_app(settings)
    seen: list[str] = []
    fetch = StripeFetcher(client, rate=1e-9, burst=1)  # one re-fetch, then the budget is spent
    app.on("payment_intent.created", refetch=fetch)(
        lambda event, tx: seen.append(event.object["status"]))
    app.inbox.accept([parse_delivery(orjson.dumps(created))])
    app.worker().drain()
    assert seen == ["succeeded"]  # what the API says now, not the snapshot

    other = client.v1.payment_intents.create(params={
        "amount": 1500, "currency": "jpy", "allowed_payment_method_types": ["card"]})
    later = next(e for e in emulator.events() if e["type"] == "payment_intent.created"
                 and e["data"]["object"]["id"] == other.id)
    app.inbox.accept([parse_delivery(orjson.dumps(later))])
    app.worker().run_once()
    record = app.inbox.get(later["id"])
    assert record.status == Status.RETRYING and "budget spent" in (record.last_error or "")
    assert pi.id != other.id
    app.close()
