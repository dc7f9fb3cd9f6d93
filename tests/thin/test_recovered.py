"""Events Stripe failed to generate: the thin ``v2.core.health.event_generation_failure.resolved``
alert names the object whose event was never made; ichido fetches that object and hands it, once
per alert, to the handlers of the impact's event type, marked as a recovery, and tells the
operator."""

from __future__ import annotations

from typing import Any, Iterator

import orjson
import pytest

from ichido.config import Settings
from tests.thin.world import PI_TYPES, ThinWorld

HEALTH = "v2.core.health.event_generation_failure.resolved"


@pytest.fixture
def world(settings: Settings) -> Iterator[ThinWorld]:
    running = ThinWorld(settings, snapshots=False, thin_types=[*PI_TYPES, HEALTH], hold=True,
                        generation_failure_rate=1.0, generation_alert_after=600)
    yield running
    running.close()


def alerts_of(world: ThinWorld) -> list[tuple[Any, ...]]:
    with world.app.database.reading() as tx:
        return [tuple(r) for r in tx.execute(
            "SELECT kind, subject, count, detail FROM ichido_alerts").fetchall()]


def test_an_alert_hands_the_impacted_object_to_its_handlers_once_marked_as_a_recovery(
        world: ThinWorld) -> None:
    got: list[tuple[str, str, str | None, str, str]] = []

    def handler(event: Any, tx: Any) -> None:
        got.append((event.type, event.shape, event.recovered_from, event.object["id"],
                    event.object["status"]))

    world.app.on("payment_intent.succeeded")(handler)
    intent = world.pay()
    world.settle()
    assert world.recorder is not None and world.recorder.deliveries == []  # never generated
    world.emulator.advance(600)
    world.settle()
    alerts = world.recorded(HEALTH)
    assert len(alerts) == 3  # payment_intent.created, .succeeded, charge.succeeded
    world.deliver(*alerts)
    world.deliver(*alerts)  # Stripe sends again: the same alerts
    world.drain()
    ids = {}
    for body in alerts:
        event = world.sdk.v2.core.events.retrieve(orjson.loads(body)["id"])
        ids[event.data["impact"]["event_type"]] = event.data["alert_id"]
    assert got == [("payment_intent.succeeded", "recovery", ids["payment_intent.succeeded"],
                    intent, "succeeded")]
    # the object was read where the impact says, with the notification's context
    assert f"v1/payment_intents/{intent}" in world.http.paths()
    # the operator hears of it: one alert kind, every failure counted
    [(kind, _, count, detail)] = alerts_of(world)
    assert kind == "event_generation_failure" and count == 3
    # the window's first: which of the three that is, is the claim's order among equals
    assert "failed to generate" in detail and any(a in detail for a in ids.values())
    with world.app.database.reading() as tx:
        statuses = sorted(r[0] for r in tx.execute("SELECT status FROM ichido_events"))
    assert statuses == ["ignored", "ignored", "processed"]  # no handler for the other two


def test_each_alert_is_one_change_keyed_by_its_alert_id(world: ThinWorld) -> None:
    seen: list[str | None] = []
    world.app.on("payment_intent.*")(lambda event, tx: seen.append(event.recovered_from))
    world.pay()
    world.settle()
    world.emulator.advance(600)
    world.settle()
    alerts = world.recorded(HEALTH)
    world.deliver(*alerts)
    world.drain()
    world.deliver(*alerts)
    world.drain()
    assert len(seen) == 2 and len(set(seen)) == 2  # created and succeeded, each its alert
    assert all(a.startswith("healt_") for a in seen)  # type: ignore[union-attr]
    with world.app.database.reading() as tx:
        held = {r[0] for r in tx.execute("SELECT change FROM ichido_changes").fetchall()}
    assert held == set(seen)  # the alert's id is the change: once per alert


def test_without_a_handler_for_the_impact_the_alert_still_reaches_the_operator(
        world: ThinWorld) -> None:
    world.app.on("customer.created")(lambda event, tx: None)
    world.pay()
    world.settle()
    world.emulator.advance(600)
    world.settle()
    world.deliver(*world.recorded(HEALTH))
    world.drain()
    [(kind, _, count, detail)] = alerts_of(world)
    assert kind == "event_generation_failure" and count == 3 and "no handler" in detail
    with world.app.database.reading() as tx:
        assert {r[0] for r in tx.execute("SELECT status FROM ichido_events")} == {"ignored"}
