"""Thin events and event destinations (v2), through the official SDK over loopback HTTP.

A receiver of thin events gets what Stripe pushes to a thin destination: a signed
``v2.core.event`` notification that ``StripeClient.parse_event_notification`` accepts with the
destination's own secret, whose ``fetch_event()`` and ``fetch_related_object()`` reach this local
Stripe unchanged.
"""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import orjson
import pytest
import stripe

from ichido.emulator import Emulator, EmulatorServer
from tests.emulator.support import KEY, Receiver, card_params, client

PI_TYPES = ["v1.payment_intent.created", "v1.payment_intent.succeeded"]
HEALTH = "v2.core.health.event_generation_failure.resolved"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def other() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def thin_destination(sdk: stripe.StripeClient, url: str, events: list[str] | None = None,
                     **extra: Any) -> Any:
    return sdk.v2.core.event_destinations.create({
        "name": "thin", "type": "webhook_endpoint", "event_payload": "thin",
        "enabled_events": events or PI_TYPES, "webhook_endpoint": {"url": url},
        "include": ["webhook_endpoint.signing_secret"], **extra})


def test_a_thin_destination_gets_signed_notifications_the_sdk_parses_and_fetches(
        emulator: Emulator, sdk: stripe.StripeClient, receiver: Receiver) -> None:
    dest = thin_destination(sdk, receiver.url)
    secret = dest.webhook_endpoint.signing_secret
    assert secret.startswith("whsec_") and dest.id.startswith("ed_test_61")
    pi = sdk.v1.payment_intents.create(card_params())
    assert emulator.settle()

    got = {d.event["type"]: d for d in receiver.deliveries}
    assert sorted(got) == PI_TYPES  # only the types it enabled, and no snapshot events
    snapshots = {e.type: e.id for e in sdk.v1.events.list({"limit": 100}).data}
    for kind, delivery in got.items():
        assert delivery.event["object"] == "v2.core.event"
        assert "data" not in delivery.event and "changes" not in delivery.event
        notif = sdk.parse_event_notification(delivery.body, delivery.signature, secret)
        assert type(notif).__name__ == "V1PaymentIntent" + \
            kind.split(".")[-1].title() + "EventNotification"
        event = notif.fetch_event()
        assert event.id == notif.id and event.type == kind
        assert event.snapshot_event == snapshots[kind.removeprefix("v1.")]
        assert event.reason is not None and event.reason.request is not None
        related = notif.fetch_related_object()
        assert isinstance(related, stripe.PaymentIntent) and related.id == pi.id
        with pytest.raises(stripe.SignatureVerificationError):
            sdk.parse_event_notification(delivery.body, delivery.signature, "whsec_other")


def test_the_secret_comes_only_with_include_and_the_url_only_when_asked(
        sdk: stripe.StripeClient, receiver: Receiver) -> None:
    dest = sdk.v2.core.event_destinations.create({
        "name": "quiet", "type": "webhook_endpoint", "event_payload": "thin",
        "enabled_events": PI_TYPES, "webhook_endpoint": {"url": receiver.url}})
    assert dest.webhook_endpoint.signing_secret is None and dest.webhook_endpoint.url is None
    again = sdk.v2.core.event_destinations.retrieve(dest.id,
                                                    {"include": ["webhook_endpoint.url"]})
    assert again.webhook_endpoint.url == receiver.url
    assert again.webhook_endpoint.signing_secret is None
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v2.core.event_destinations.retrieve(
            dest.id, {"include": ["webhook_endpoint.signing_secret"]})


def test_snapshot_and_thin_destinations_each_get_their_kind_and_the_twins_pair_up(
        emulator: Emulator, sdk: stripe.StripeClient, receiver: Receiver,
        other: Receiver) -> None:
    thin = thin_destination(sdk, receiver.url, ["v1.payment_intent.succeeded"])
    snap = sdk.v2.core.event_destinations.create({
        "name": "snapshot", "type": "webhook_endpoint", "event_payload": "snapshot",
        "enabled_events": ["payment_intent.succeeded"], "snapshot_api_version":
        "2025-03-31.basil", "webhook_endpoint": {"url": other.url},
        "include": ["webhook_endpoint.signing_secret"]})
    assert snap.snapshot_api_version == "2025-03-31.basil" and thin.snapshot_api_version is None
    sdk.v1.payment_intents.create(card_params())
    assert emulator.settle()

    [snapshot] = other.deliveries
    event = stripe.Webhook.construct_event(snapshot.body, snapshot.signature,
                                           snap.webhook_endpoint.signing_secret)
    assert event.type == "payment_intent.succeeded" and event.api_version == "2025-03-31.basil"
    [pushed] = receiver.deliveries
    assert pushed.event["snapshot_event"] == event.id  # the thin handler keys on this
    with pytest.raises(stripe.SignatureVerificationError):  # each destination its own secret
        stripe.Webhook.construct_event(snapshot.body, snapshot.signature,
                                       thin.webhook_endpoint.signing_secret)
    # A v1 endpoint list shows v1 endpoints only; the destinations are v2's.
    assert [e.id for e in sdk.v1.webhook_endpoints.list().data] == []


def test_events_list_newest_first_paged_by_next_page_url_and_filtered(
        emulator: Emulator, sdk: stripe.StripeClient) -> None:
    first = sdk.v1.payment_intents.create(card_params())
    second = sdk.v1.payment_intents.create(card_params())
    everything = list(sdk.v2.core.events.list().auto_paging_iter())
    assert len(everything) == 6  # three events per card payment, each with its thin twin
    assert everything[0].related_object.id == second.id

    page = sdk.v2.core.events.list({"limit": 4})
    assert page.next_page_url is not None and len(page.data) == 4
    paged = [e.id for e in page.auto_paging_iter()]
    assert paged == [e.id for e in everything]
    back = sdk.v2.core.events.list({"limit": 4}).next_page_url
    assert back is not None
    later = sdk.raw_request("get", back)
    earlier = orjson.loads(sdk.raw_request("get", orjson.loads(later.body)[
        "previous_page_url"]).body)
    assert [e["id"] for e in earlier["data"]] == paged[:4]

    mine = sdk.v2.core.events.list({"object_id": first.id,
                                    "types": ["v1.payment_intent.succeeded"]})
    assert [(e.type, e.related_object.id) for e in mine.data] == [
        ("v1.payment_intent.succeeded", first.id)]
    newest = everything[0].created
    assert [e.id for e in sdk.v2.core.events.list({"created": {"gte": newest}}).data] == \
        [e.id for e in everything if e.created >= newest]
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v2.core.events.list({"types": [f"v1.t{n}" for n in range(21)]})


def test_a_missing_event_or_destination_is_a_v2_not_found(
        sdk: stripe.StripeClient, http: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sdk.v2.core.events.retrieve("evt_test_65nothing")
    assert missing.value.http_status == 404 and missing.value.code == "not_found"
    answer = http.get("/v2/core/event_destinations/ed_test_61nothing")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    refused = http.post("/v2/core/event_destinations", content=b"name=x",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_json"


def test_destination_lifecycle_changes_what_it_gets(
        emulator: Emulator, sdk: stripe.StripeClient, receiver: Receiver) -> None:
    dest = thin_destination(sdk, receiver.url, ["v1.payment_intent.created"])
    assert [d.id for d in sdk.v2.core.event_destinations.list().data] == [dest.id]
    disabled = sdk.v2.core.event_destinations.disable(dest.id)
    assert disabled.status == "disabled" and disabled.status_details is not None
    sdk.v1.payment_intents.create(card_params())
    assert emulator.settle() and receiver.deliveries == []

    enabled = sdk.v2.core.event_destinations.enable(dest.id)
    assert enabled.status == "enabled" and enabled.status_details is None
    updated = sdk.v2.core.event_destinations.update(dest.id, {
        "enabled_events": ["v1.payment_intent.succeeded"], "metadata": {"team": "shop"}})
    assert updated.enabled_events == ["v1.payment_intent.succeeded"]
    assert updated.metadata.to_dict() == {"team": "shop"}
    sdk.v1.payment_intents.create(card_params())
    assert emulator.settle()
    assert [d.event["type"] for d in receiver.deliveries] == ["v1.payment_intent.succeeded"]

    deleted = sdk.v2.core.event_destinations.delete(dest.id)
    assert deleted.id == dest.id
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v2.core.event_destinations.retrieve(dest.id)
    sdk.v1.payment_intents.create(card_params())
    assert emulator.settle() and len(receiver.deliveries) == 1


def test_ping_goes_to_the_destination_pinged_whatever_it_enables(
        emulator: Emulator, sdk: stripe.StripeClient, receiver: Receiver,
        other: Receiver) -> None:
    dest = thin_destination(sdk, receiver.url, ["v1.payment_intent.succeeded"])
    thin_destination(sdk, other.url, ["v1.payment_intent.succeeded"])
    ping = sdk.v2.core.event_destinations.ping(dest.id)
    assert ping.type == "v2.core.event_destination.ping"
    assert emulator.settle()
    assert other.deliveries == []
    [delivery] = receiver.deliveries
    notif = sdk.parse_event_notification(delivery.body, delivery.signature,
                                         dest.webhook_endpoint.signing_secret)
    assert type(notif).__name__ == "V2CoreEventDestinationPingEventNotification"
    assert notif.id == ping.id
    assert notif.fetch_related_object().id == dest.id


def test_chaos_duplicates_and_forced_failures_reach_thin_deliveries(
        receiver: Receiver) -> None:
    emulator = Emulator(api_key=KEY, duplicate_rate=1.0, fail_rate=1.0, seed=7,
                        retry_delays=[0.01])
    with EmulatorServer(emulator) as server:
        sdk = client(server.url)
        thin_destination(sdk, receiver.url, ["v1.payment_intent.succeeded"])
        sdk.v1.payment_intents.create(card_params())
        assert emulator.settle()
    # The first attempt, its duplicate copy; the first's 2xx is taken as a timeout.
    stats = emulator.stats()
    assert stats["duplicates_sent"] == 1 and stats["forced_failures"] == 1
    assert len(receiver.deliveries) >= 2 and set(receiver.ids()) == {receiver.ids()[0]}
    assert receiver.ids()[0].startswith("evt_test_65")


def test_events_never_generated_are_neither_listed_nor_sent_and_the_alert_names_them(
        receiver: Receiver) -> None:
    emulator = Emulator(api_key=KEY, generation_failure_rate=1.0, generation_alert_after=600)
    with EmulatorServer(emulator) as server:
        sdk = client(server.url)
        dest = thin_destination(sdk, receiver.url, [*PI_TYPES, HEALTH])
        pi = sdk.v1.payment_intents.create(card_params())
        assert emulator.settle()
        assert receiver.deliveries == []
        assert sdk.v1.events.list().data == [] and sdk.v2.core.events.list().data == []
        assert emulator.stats()["events_not_generated"] == 3  # the payment's three changes

        emulator.advance(600)
        assert emulator.settle()
        alerts = [sdk.parse_event_notification(d.body, d.signature,
                                               dest.webhook_endpoint.signing_secret)
                  for d in receiver.deliveries]
        assert {a.type for a in alerts} == {HEALTH}
        impacts = sorted((e.data["impact"]["event_type"], e.data["impact"]["related_object"]["id"])
                         for e in (a.fetch_event() for a in alerts))
        charge = sdk.v1.charges.list({"payment_intent": pi.id}).data[0].id
        assert impacts == [("charge.succeeded", charge), ("payment_intent.created", pi.id),
                           ("payment_intent.succeeded", pi.id)]
        url = orjson.loads(receiver.deliveries[0].body).get("related_object")
        assert url is None  # the alert's object is in data.impact, fetched with the event


def test_v1_webhook_endpoints_are_created_with_their_secret_and_deleted(
        emulator: Emulator, sdk: stripe.StripeClient, receiver: Receiver) -> None:
    made = sdk.v1.webhook_endpoints.create({"url": receiver.url,
                                            "enabled_events": ["payment_intent.succeeded"]})
    assert made.secret is not None and made.secret.startswith("whsec_")
    gone = sdk.v1.webhook_endpoints.delete(made.id)
    assert gone.deleted is True and gone.id == made.id
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.webhook_endpoints.retrieve(made.id)
    again = sdk.v1.webhook_endpoints.create({"url": receiver.url, "enabled_events": ["*"]})
    assert again.id != made.id  # ids are never reused
    sdk.v1.webhook_endpoints.delete(again.id)
    sdk.v1.payment_intents.create(card_params())
    assert emulator.settle() and receiver.deliveries == []


def test_v2_requests_keep_idempotency_keys_rate_limits_and_keys_as_v1_does(
        emulator: Emulator, sdk: stripe.StripeClient, http: Any, receiver: Receiver) -> None:
    body = {"name": "once", "type": "webhook_endpoint", "event_payload": "thin",
            "enabled_events": PI_TYPES, "webhook_endpoint": {"url": receiver.url}}
    first = http.post("/v2/core/event_destinations", json=body,
                      headers={"Idempotency-Key": "make-once"})
    again = http.post("/v2/core/event_destinations", json=body,
                      headers={"Idempotency-Key": "make-once"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert len(sdk.v2.core.event_destinations.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        sdk.v2.core.event_destinations.create({**body, "name": "other"},
                                              {"idempotency_key": "make-once"})

    http.post("/_emulator/rate_limit", data={"requests": "1"})
    with pytest.raises(stripe.RateLimitError):
        sdk.v2.core.events.list()
    anonymous = httpx.get(str(http.base_url.join("/v2/core/events")))
    assert anonymous.status_code == 401
    assert set(anonymous.json()["error"]) == {"type", "code", "message"}
