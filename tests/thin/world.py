"""A world for thin events end to end: the local Stripe on loopback, sending snapshot events to
ichido's endpoint as a v1 webhook endpoint and thin notifications as an event destination (each
with its own secret, both in ichido's secret list), and ichido's app served on loopback, whose
worker fetches from the local Stripe through the official SDK.

The SDK's HTTP client records what it sends (``sent``): how many reads, which paths, which
headers. Handlers record what they saw in ``seen`` (``record``).
"""

from __future__ import annotations

from typing import Any, Mapping

import httpx
import orjson
import stripe

from ichido import App
from ichido.config import Settings
from ichido.emulator import Emulator, EmulatorServer
from ichido.serving import ThreadedServer
from ichido.thin.reader import Reader
from tests.emulator.support import Receiver as Recorder
from tests.support import SECRET, free_port, signed_headers

KEY = "sk_test_ichido_thin"
PI_TYPES = ["v1.payment_intent.created", "v1.payment_intent.succeeded"]
SEEN = ("seen", 1, ["CREATE TABLE seen (event_id TEXT NOT NULL, type TEXT NOT NULL,"
                    " shape TEXT NOT NULL, object_id TEXT, status TEXT, attempt INTEGER)"])


class RecordingHttp(stripe.RequestsClient):
    """Stripe's own HTTP client, noting each request it sends."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def request(self, method: str, url: str, headers: Mapping[str, str],
                post_data: Any = None) -> Any:
        self.sent.append((method, url, dict(headers or {})))
        return super().request(method, url, headers, post_data)

    def paths(self) -> list[str]:
        return [url.split("://", 1)[1].split("/", 1)[1].split("?")[0] for _, url, _ in self.sent]


def record(event: Any, tx: Any) -> None:
    """A handler: one row per application, with the shape and the object it saw."""
    tx.execute("INSERT INTO seen (event_id, type, shape, object_id, status, attempt)"
               " VALUES (?, ?, ?, ?, ?, ?)", (event.id, event.type, event.shape,
                                             event.object.get("id"), event.object.get("status"),
                                             event.attempt))


class ThinWorld:
    def __init__(self, settings: Settings, *, snapshots: bool = True,
                 thin_types: list[str] | None = None, hold: bool = False,
                 **emulator: Any) -> None:
        """``hold``: the local Stripe sends to a recorder instead, and the test delivers what
        it recorded to ichido in the order it chooses (``deliver``)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks/stripe"
        self.recorder = Recorder().start() if hold else None
        target = self.recorder.url if self.recorder is not None else self.url
        self.emulator = Emulator(webhook_urls=[target] if snapshots else [],
                                 webhook_secrets=[SECRET] if snapshots else [], api_key=KEY,
                                 **emulator)
        self.stripe_server = EmulatorServer(self.emulator).start()
        self.http = RecordingHttp()
        self.sdk = stripe.StripeClient(KEY, base_addresses={"api": self.stripe_server.url},
                                       max_network_retries=0, http_client=self.http)
        self.destination = self.sdk.v2.core.event_destinations.create({
            "name": "ichido", "type": "webhook_endpoint", "event_payload": "thin",
            "enabled_events": thin_types or PI_TYPES, "webhook_endpoint": {"url": target},
            "include": ["webhook_endpoint.signing_secret"]})
        self.thin_secret = self.destination.webhook_endpoint.signing_secret
        self.app = App(settings.with_(webhook_secrets=(SECRET, self.thin_secret)), workers=0,
                       schema=[SEEN])
        self.app.migrate()
        self.app.start()
        self.app.reader = Reader(self.app.settings.fetch_rate, client=self.sdk)
        self.receiver = ThreadedServer(self.app, port=self.port).start()
        self.http.sent.clear()  # the destination's creation is not a read

    def pay(self) -> str:
        """A card payment: created and succeeded, each as a snapshot and as a thin twin."""
        intent = self.sdk.v1.payment_intents.create({
            "amount": 3000, "currency": "jpy", "allowed_payment_method_types": ["card"],
            "payment_method": "pm_card_visa", "confirm": True})
        self.http.sent.clear()
        return str(intent.id)

    def settle(self) -> None:
        """Every delivery answered, so everything sent is stored."""
        assert self.emulator.settle(timeout=60), "the local Stripe never settled"

    def drain(self) -> int:
        return self.app.worker().drain()

    def seen(self) -> list[tuple[Any, ...]]:
        with self.app.database.reading() as tx:
            return [tuple(r) for r in tx.execute(
                "SELECT event_id, type, shape, object_id, status, attempt FROM seen"
                " ORDER BY event_id").fetchall()]

    def recorded(self, kind: str) -> list[bytes]:
        """The bodies the recorder got of event type ``kind``, in the order they came."""
        assert self.recorder is not None
        return [d.body for d in self.recorder.deliveries if d.event["type"] == kind]

    def deliver(self, *bodies: bytes) -> None:
        """POST each body to ichido, signed now with the secret of its shape."""
        with httpx.Client() as client:
            for body in bodies:
                thin = orjson.loads(body)["object"] == "v2.core.event"
                answer = client.post(self.url, content=body, headers=signed_headers(
                    body, [self.thin_secret if thin else SECRET]))
                assert answer.status_code == 200, answer.text

    def thin_headers(self, body: bytes) -> dict[str, str]:
        return signed_headers(body, [self.thin_secret])

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()
        self.receiver.stop()
        self.app.close()
        self.stripe_server.stop()
