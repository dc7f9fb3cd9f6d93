"""The Events API: every change is an event; Stripe's filters, cursors and 30-day window."""

from __future__ import annotations

import httpx
import pytest
import stripe

from ichido.emulator import Emulator
from tests.emulator.support import card_params, konbini_params


def test_event_snapshots_keep_the_object_as_it_was(sdk: stripe.StripeClient,
                                                   emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=konbini_params())
    emulator.advance(180)
    events = sdk.v1.events.list(params={"type": "payment_intent.*"}).data
    assert [e.type for e in events] == ["payment_intent.succeeded",
                                        "payment_intent.requires_action",
                                        "payment_intent.created"]
    assert [e.data.object.status for e in events] == ["succeeded", "requires_action",
                                                      "requires_confirmation"]
    event = events[0]
    assert (event.object, event.livemode, event.api_version) == ("event", False,
                                                                 "2026-10-28.endive")
    assert event.id.startswith("evt_") and event.data.object.id == pi.id
    assert sdk.v1.events.retrieve(event.id).data.object.status == "succeeded"


def test_type_types_and_created_filters(sdk: stripe.StripeClient, emulator: Emulator) -> None:
    sdk.v1.payment_intents.create(params=card_params())
    start = emulator.now()
    emulator.advance(100)
    sdk.v1.payment_intents.create(params={"amount": 500, "currency": "jpy"})
    charge_events = sdk.v1.events.list(params={"type": "charge.succeeded"}).data
    assert [e.type for e in charge_events] == ["charge.succeeded"]
    both = sdk.v1.events.list(params={"types": ["charge.succeeded",
                                                "payment_intent.succeeded"]}).data
    assert {e.type for e in both} == {"charge.succeeded", "payment_intent.succeeded"}
    late = sdk.v1.events.list(params={"created": {"gt": start + 50}}).data
    assert [e.type for e in late] == ["payment_intent.created"]
    early = sdk.v1.events.list(params={"created": {"lte": start}}).data
    assert len(early) == 3
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.events.list(params={"type": "charge.succeeded", "types": ["charge.failed"]})


def test_delivery_success_without_endpoints_means_nothing_pending(
        sdk: stripe.StripeClient) -> None:
    sdk.v1.payment_intents.create(params=card_params())
    assert len(sdk.v1.events.list(params={"delivery_success": True}).data) == 3
    assert sdk.v1.events.list(params={"delivery_success": False}).data == []


def test_auto_paging_iter_walks_every_event_both_ways(sdk: stripe.StripeClient,
                                                      emulator: Emulator) -> None:
    for i in range(7):
        sdk.v1.payment_intents.create(params=card_params(amount=1000 + i))
    everything = [e["id"] for e in reversed(emulator.events())]
    assert len(everything) == 21
    forward = [e.id for e in sdk.v1.events.list(params={"limit": 4}).auto_paging_iter()]
    assert forward == everything
    backward = sdk.v1.events.list(params={"limit": 4, "ending_before": everything[-1]})
    assert [e.id for e in backward.auto_paging_iter()] == everything[-2::-1]


def test_events_older_than_30_days_are_gone(sdk: stripe.StripeClient, emulator: Emulator,
                                            http: httpx.Client) -> None:
    sdk.v1.payment_intents.create(params={"amount": 500, "currency": "jpy"})
    old = sdk.v1.events.list().data[0].id
    emulator.advance(29 * 86400)
    assert sdk.v1.events.retrieve(old).id == old
    emulator.advance(86400 + 1)
    assert sdk.v1.events.list().data == []
    assert http.get(f"/v1/events/{old}").status_code == 404


def test_updates_carry_previous_attributes_and_api_requests_their_ids(
        http: httpx.Client, emulator: Emulator) -> None:
    pi = http.post("/v1/payment_intents", data={"amount": "3000", "currency": "jpy",
                                                "payment_method": "pm_card_visa",
                                                "confirm": "true"},
                   headers={"Idempotency-Key": "evt-key"})
    refund = http.post("/v1/refunds", data={"payment_intent": pi.json()["id"],
                                            "amount": "1000"})
    events = emulator.events()
    assert all(e["request"] == {"id": pi.headers["Request-Id"], "idempotency_key": "evt-key"}
               for e in events[:3])
    assert events[-1]["type"] == "charge.refunded"
    assert events[-1]["request"]["id"] == refund.headers["Request-Id"]
    assert events[-1]["data"]["previous_attributes"] == {"amount_refunded": 0}
    assert all("previous_attributes" not in e["data"] for e in events[:-1])


def test_listeners_hear_every_event_in_order(sdk: stripe.StripeClient,
                                             emulator: Emulator) -> None:
    heard: list[str] = []
    emulator.on_event(lambda event: heard.append(event["type"]))
    sdk.v1.payment_intents.create(params=card_params())
    assert heard == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]


def test_created_bounds_are_exclusive_and_inclusive_as_named(sdk: stripe.StripeClient,
                                                             emulator: Emulator) -> None:
    stamps = []
    for _ in range(3):
        sdk.v1.payment_intents.create(params={"amount": 500, "currency": "jpy"})
        stamps.append(emulator.now())
        emulator.advance(10)

    def created(**bounds: int) -> list[int]:
        return [e.created for e in sdk.v1.events.list(params={"created": bounds}).data]
    assert created(gt=stamps[0], lt=stamps[2]) == [stamps[1]]
    assert created(gte=stamps[0], lte=stamps[2]) == stamps[::-1]
    assert created(gte=stamps[1]) == stamps[:0:-1] and created(lt=stamps[0]) == []
    assert [e.created for e in sdk.v1.events.list(params={"created": stamps[1]}).data] == \
        [stamps[1]]


def test_a_cursor_is_a_position_even_when_filtered_out(sdk: stripe.StripeClient,
                                                       emulator: Emulator) -> None:
    """A sweep over ``delivery_success=false`` must go on when the cursor's event got delivered
    in between: the cursor marks a place in the log, it need not match the filter."""
    for i in range(3):
        sdk.v1.payment_intents.create(params=card_params(amount=1000 + i))
    log = [e["id"] for e in reversed(emulator.events())]  # newest first
    created_middle = log[5]  # the second intent's payment_intent.created
    older = sdk.v1.events.list(params={"type": "charge.succeeded",
                                       "starting_after": created_middle}).data
    assert [e.id for e in older] == [log[7]]  # the first intent's charge
    newer = sdk.v1.events.list(params={"type": "charge.succeeded",
                                       "ending_before": created_middle}).data
    assert [e.id for e in newer] == [log[1], log[4]]
    page = sdk.v1.events.list(params={"limit": 2, "starting_after": log[0]})
    assert [e.id for e in page.data] == log[1:3] and page.has_more
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.events.list(params={"starting_after": log[0], "ending_before": log[2]})
