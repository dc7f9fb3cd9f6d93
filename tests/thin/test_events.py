"""One event model for handlers: a handler of ``payment_intent.succeeded`` runs for the
snapshot and for the ``v1.payment_intent.succeeded`` thin event alike, with ``event.object``
the snapshot's or the fetched one and ``event.shape`` saying which; handlers can register for
``v2.*`` types; wildcards keep working; ``latest_only`` judges a fetched object by its own
status and timestamps."""

from __future__ import annotations

from typing import Any, Iterator

import orjson
import pytest

from ichido.config import Settings
from tests.thin.world import ThinWorld, record


@pytest.fixture
def world(settings: Settings) -> Iterator[ThinWorld]:
    running = ThinWorld(settings, hold=True)
    yield running
    running.close()


def test_one_handler_gets_both_shapes_with_the_object_of_each(world: ThinWorld) -> None:
    world.app.on("payment_intent.succeeded")(record)
    by_snapshot, by_thin = world.pay(), world.pay()
    world.settle()
    snapshots = [b for b in world.recorded("payment_intent.succeeded")
                 if orjson.loads(b)["data"]["object"]["id"] == by_snapshot]
    thins = [b for b in world.recorded("v1.payment_intent.succeeded")
             if orjson.loads(b)["related_object"]["id"] == by_thin]
    world.deliver(*snapshots, *thins)
    world.drain()
    assert sorted(row[1:5] for row in world.seen()) == sorted([
        ("payment_intent.succeeded", "snapshot", by_snapshot, "succeeded"),
        ("payment_intent.succeeded", "thin", by_thin, "succeeded")])


def test_handlers_register_for_v2_types_and_wildcards_match_thin_events(
        world: ThinWorld) -> None:
    got: list[tuple[str, str, str, Any]] = []

    def noting(name: str) -> Any:
        def handler(event: Any, tx: Any) -> None:
            got.append((name, event.type, event.shape, event.payload.get("data")))
        return handler

    world.app.on("v2.core.event_destination.ping")(noting("ping"))
    world.app.on("*")(noting("everything"))
    world.app.on("payment_intent.*")(noting("snapshot pattern"))
    world.app.on("v1.*")(noting("thin pattern"))
    world.pay()
    world.settle()
    world.sdk.v2.core.event_destinations.ping(world.destination.id)
    world.settle()
    [ping] = world.recorded("v2.core.event_destination.ping")
    world.deliver(ping, *world.recorded("v1.payment_intent.succeeded"))
    world.http.sent.clear()
    world.drain()
    assert sorted(g[:3] for g in got) == sorted([
        ("ping", "v2.core.event_destination.ping", "thin"),
        ("everything", "v2.core.event_destination.ping", "thin"),
        ("thin pattern", "payment_intent.succeeded", "thin"),
        ("everything", "payment_intent.succeeded", "thin"),
        ("snapshot pattern", "payment_intent.succeeded", "thin")])
    ping_id = orjson.loads(ping)["id"]
    assert [g[3] for g in got if g[0] == "ping"] == [{}]  # the fetched event's data
    # a v2 event carries its data itself: its related object is not read
    assert sum(f"v2/core/events/{ping_id}" in url for _, url, _ in world.http.sent) == 1
    assert not any("event_destinations" in url for _, url, _ in world.http.sent)


def test_latest_only_judges_a_fetched_object_by_its_own_status_and_timestamps(
        world: ThinWorld) -> None:
    world.app.on("payment_intent.*", latest_only=True)(record)
    intent = world.pay()
    world.settle()
    [thin] = world.recorded("v1.payment_intent.succeeded")
    [older] = world.recorded("payment_intent.created")  # a snapshot of an earlier change
    world.deliver(thin)
    world.drain()
    with world.app.database.reading() as tx:
        applied = tx.execute("SELECT event_id, status_rank FROM ichido_applied"
                             " WHERE object_id = ?", (intent,)).fetchone()
    assert tuple(applied) == (orjson.loads(thin)["id"], 6)  # the fetched object: succeeded
    world.deliver(older)
    world.drain()
    assert world.app.inbox.get(orjson.loads(older)["id"]).status == "stale"
    assert [row[2:5] for row in world.seen()] == [("thin", intent, "succeeded")]
