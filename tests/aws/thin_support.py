"""Thin events on the AWS layouts: the local Stripe on loopback sends a change's snapshot event
and its thin twin to a recorder (a v1 endpoint and a thin event destination, each with its own
secret); the test hands them to a layout's Lambda receiver (or to its queue, as EventBridge
would) in the order it chooses, and the layout's worker reads from the local Stripe through the
official SDK, whose requests are noted (``paths``)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import stripe

from ichido.aws import stores
from ichido.emulator import Emulator, EmulatorServer
from ichido.thin.reader import Reader
from tests.emulator.support import Receiver as Recorder
from tests.support import SECRET, signed_headers
from tests.thin.world import KEY, PI_TYPES, RecordingHttp

SUCCEEDED = "payment_intent.succeeded"
PING = "v2.core.event_destination.ping"


class ThinStripe:
    def __init__(self) -> None:
        self.recorder = Recorder().start()
        self.emulator = Emulator(webhook_urls=[self.recorder.url], webhook_secrets=[SECRET],
                                 api_key=KEY)
        self.server = EmulatorServer(self.emulator).start()
        self.http = RecordingHttp()
        self.sdk = stripe.StripeClient(KEY, base_addresses={"api": self.server.url},
                                       max_network_retries=0, http_client=self.http)
        self.destination = destination = self.sdk.v2.core.event_destinations.create({
            "name": "ichido", "type": "webhook_endpoint", "event_payload": "thin",
            "enabled_events": PI_TYPES, "webhook_endpoint": {"url": self.recorder.url},
            "include": ["webhook_endpoint.signing_secret"]})
        self.thin_secret = destination.webhook_endpoint.signing_secret
        self.secrets = (SECRET, self.thin_secret)

    def pay(self) -> str:
        """A card payment: created and succeeded, each sent as a snapshot and as a thin twin."""
        intent = self.sdk.v1.payment_intents.create({
            "amount": 3000, "currency": "jpy", "allowed_payment_method_types": ["card"],
            "payment_method": "pm_card_visa", "confirm": True})
        assert self.emulator.settle(timeout=60), "the local Stripe never settled"
        self.http.sent.clear()
        return str(intent.id)

    def recorded(self, kind: str) -> bytes:
        [body] = [d.body for d in self.recorder.deliveries if d.event["type"] == kind]
        return body

    def ping(self) -> bytes:
        """The ``v2.core.event_destination.ping`` Stripe sends when the destination is pinged
        (a v2 event: its event is read, no object)."""
        self.sdk.v2.core.event_destinations.ping(self.destination.id)
        assert self.emulator.settle(timeout=60), "the local Stripe never settled"
        self.http.sent.clear()
        return self.recorded(PING)

    def snapshot(self) -> bytes:
        return self.recorded(SUCCEEDED)

    def thin(self) -> bytes:
        return self.recorded(f"v1.{SUCCEEDED}")

    def headers(self, body: bytes) -> dict[str, str]:
        thin = orjson.loads(body)["object"] == "v2.core.event"
        return signed_headers(body, [self.thin_secret if thin else SECRET])

    def paths(self) -> list[str]:
        return self.http.paths()

    def reader(self) -> Reader:
        return Reader(1000, client=self.sdk)

    def wire(self, applier: Any, ledger: Any) -> None:
        """Give a layout's worker the fetch stage the Lambda entry point builds for it."""
        applier.fetch = stores.fetch(ledger, self.reader())

    def close(self) -> None:
        self.recorder.stop()
        self.server.stop()


def eventbridge_envelope(detail: bytes, source: str = "aws.partner/stripe.com/ed_test_1") -> str:
    """An Amazon EventBridge event as its rule puts it on the queue: Stripe's event in
    ``detail`` (the shape of stripe-node's ``EVENTBRIDGE_V2_PAYLOAD`` test fixture)."""
    doc = orjson.loads(detail)
    return orjson.dumps({
        "version": "0", "id": str(uuid.uuid4()), "detail-type": doc["type"], "source": source,
        "account": "123456789012", "time": "2026-10-01T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": doc}).decode()
