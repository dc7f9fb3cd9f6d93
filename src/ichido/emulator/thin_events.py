"""Thin events (``"object": "v2.core.event"``): made, kept, rendered and sent as Stripe does.

Every snapshot event of a change (``payment_intent.succeeded``) has a thin twin
(``v1.payment_intent.succeeded``) whose ``snapshot_event`` names it: "for interop events, this is
the snapshot event ID" (Stripe's ``v2.core.event`` schema). A thin event is pushed without
``data`` or ``changes`` (``notification``); ``GET /v2/core/events/{id}`` adds them (``{}`` and
null for ``v1.*`` types, as the spec's samples). ``related_object`` is ``{id, type, url}``: the
snapshot's object, its v1 name, and the path this local Stripe serves it at, so the SDK's
``fetch_related_object()`` works. Thin ids are ``evt_test_65…`` (snapshot ids ``evt_…``), as
Stripe's test-mode thin ids; ``created`` is an RFC 3339 string with milliseconds.

Kept 30 days, like snapshot events. Sent by the same webhook sender (retries, chaos, disable,
down), to thin destinations only (``endpoints.Endpoint.thin``), each signed with its own secret.

Event generation failure (chaos, ``generation_failure_rate``): "in very rare cases, Stripe can
fail to generate the Event object" (docs.stripe.com/webhooks/handle-irrecoverable-events). The
share of changes so chosen gets no snapshot event and no thin one: nothing stored, listed or
sent. ``alert_after`` seconds of emulator clock later Stripe sends the thin
``v2.core.health.event_generation_failure.resolved`` whose ``data.impact`` names the object
(``event_type`` is the snapshot type, as in the only sample Stripe publishes, and
``related_object {id, type, url}``); thin destinations that enable that type get it.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from typing import Any, Callable

import orjson

from ichido.emulator.endpoints import PING
from ichido.emulator.objects import new_id
from ichido.emulator.state import EVENT_RETENTION, REQUEST, Store
from ichido.emulator.webhooks import WebhookSender

HEALTH_RESOLVED = "v2.core.health.event_generation_failure.resolved"
RESOLVE_ACTION = "thin_events.generation_failure_resolved"
NOTIFIED = ("id", "object", "type", "created", "livemode", "context", "reason",
            "related_object", "snapshot_event")  # the pushed body: no data, no changes
# A v1 object's path where it is not its name plus "s" (related_object.url).
PATHS = {"checkout.session": "checkout/sessions", "test_helpers.test_clock":
         "test_helpers/test_clocks", "invoiceitem": "invoiceitems"}
SOURCES = ("card", "bank_account", "source")  # served under their customer


def thin_id(prefix: str) -> str:
    """Stripe's v2 ids run on from their prefix: ``evt_test_65RCjj4EqW1sabcjs2Z16…``."""
    return prefix + new_id("x", 44)[2:]


def rfc3339(millis: int) -> str:
    """Stripe's v2 timestamps: ``2026-10-01T10:00:00.000Z``."""
    moment = datetime.fromtimestamp(millis / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def related_object(obj: dict[str, Any]) -> dict[str, str]:
    """``{id, type, url}`` for a v1 object, ``url`` being where ``GET`` fetches it."""
    kind, object_id = str(obj.get("object")), str(obj.get("id"))
    if kind in SOURCES and obj.get("customer"):
        url = f"/v1/customers/{obj['customer']}/sources/{object_id}"
    elif kind == "cash_balance":  # one per customer, no id of its own
        object_id = str(obj.get("customer"))
        url = f"/v1/customers/{object_id}/cash_balance"
    elif kind == "customer_cash_balance_transaction":
        url = f"/v1/customers/{obj.get('customer')}/cash_balance_transactions/{object_id}"
    else:
        url = f"/v1/{PATHS.get(kind, kind.replace('.', '/') + 's')}/{object_id}"
    return {"id": object_id, "type": kind, "url": url}


def reason(request: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"type": "request", "request": {id, idempotency_key}}`` for an API request's event;
    null for what Stripe did on its own (a voucher paid, a renewal)."""
    if not request or not request.get("id"):
        return None
    return {"type": "request", "request": {"id": request["id"],
                                           "idempotency_key": request.get("idempotency_key")}}


class ThinEvents:
    """The v2 event log. Runs under the store's lock (its listener and due action do)."""

    def __init__(self, store: Store, *, generation_failure_rate: float = 0.0,
                 alert_after: float = 300.0, seed: int | None = None) -> None:
        if not 0.0 <= generation_failure_rate <= 1.0:
            raise ValueError(f"rates are between 0 and 1, got {generation_failure_rate}")
        if alert_after < 0:
            raise ValueError(f"alert_after is seconds from now, got {alert_after}")
        self.store, self.failure_rate, self.alert_after = store, generation_failure_rate, \
            alert_after
        self.rng = random.Random(seed)
        self.events: dict[str, dict[str, Any]] = {}  # oldest first
        self.millis: dict[str, int] = {}  # each event's created, in ms of emulator clock
        self.failures: dict[str, dict[str, Any]] = {}  # alert id -> the event never made
        self.not_generated = 0  # changes whose events were never made, alerted or not
        self.sender: WebhookSender | None = None
        store.generates = self._generates
        store.listeners.append(self._twin)
        store.due_actions[RESOLVE_ACTION] = self._resolved

    def attach(self, sender: WebhookSender) -> None:
        self.sender = sender

    # -- making ------------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int((time.time() + self.store.clock.offset) * 1000)

    def add(self, event_type: str, *, related: dict[str, Any] | None = None,
            request: dict[str, Any] | None = None, snapshot_event: str | None = None,
            data: dict[str, Any] | None = None, changes: dict[str, Any] | None = None,
            only: list[Any] | None = None) -> dict[str, Any]:
        """Record one thin event and send it (to ``only`` these endpoints, or to every thin
        destination that takes its type)."""
        now = self._now_ms()
        event: dict[str, Any] = {
            "id": thin_id("evt_test_65"), "object": "v2.core.event", "type": event_type,
            "created": rfc3339(now), "livemode": False, "context": None,
            "reason": reason(request)}
        if related is not None:
            event["related_object"] = related
        if snapshot_event is not None:
            event["snapshot_event"] = snapshot_event
        event["data"], event["changes"] = data if data is not None else {}, changes
        self.events[event["id"]] = event
        self.millis[event["id"]] = now
        if self.sender is not None:
            self.sender.enqueue(event, only)
        return event

    def _twin(self, snapshot: dict[str, Any]) -> None:
        """The thin twin of a snapshot event, made when the snapshot event is."""
        self.add(f"v1.{snapshot['type']}", related=related_object(snapshot["data"]["object"]),
                 request=snapshot.get("request"), snapshot_event=snapshot["id"])

    def ping(self, destination: dict[str, Any], target: Any) -> dict[str, Any]:
        """``v2.core.event_destination.ping``, sent to the destination pinged alone."""
        related = {"id": destination["id"], "type": "v2.core.event_destination",
                   "url": f"/v2/core/event_destinations/{destination['id']}"}
        return self.add(PING, related=related, request=REQUEST.get(), only=[target])

    # -- generation failure ------------------------------------------------------------------
    def _generates(self, event: dict[str, Any]) -> bool:
        if self.failure_rate <= 0 or self.rng.random() >= self.failure_rate:
            return True
        alert_id = thin_id("healt_61")
        self.not_generated += 1
        self.failures[alert_id] = {"type": event["type"], "created": event["created"],
                                   "related": related_object(event["data"]["object"])}
        self.store.schedule(self.store.clock.now() + int(self.alert_after), RESOLVE_ACTION,
                            alert_id)
        return False

    def _resolved(self, alert_id: str, _token: str) -> None:
        failure = self.failures.pop(alert_id, None)
        if failure is None:
            return
        self.add(HEALTH_RESOLVED, data={
            "alert_id": alert_id, "grouping_key": f"_grouping_{failure['type']}",
            "impact": {"event_type": failure["type"], "related_object": failure["related"]},
            "resolved_at": rfc3339(self._now_ms()),
            "summary": "We have failed to create a notification for your Stripe account."})

    def missed(self) -> list[dict[str, Any]]:
        """Changes whose events were never generated and whose alert is still to come."""
        return [{"alert_id": i, **f} for i, f in self.failures.items()]

    # -- reading -----------------------------------------------------------------------------
    def _expired(self, event: dict[str, Any]) -> bool:
        return self.millis[event["id"]] < (self.store.clock.now() - EVENT_RETENTION) * 1000

    def get(self, event_id: str) -> dict[str, Any] | None:
        event = self.events.get(event_id)
        return None if event is None or self._expired(event) else event

    def live(self) -> list[dict[str, Any]]:
        """Newest first, without those older than 30 days (gone for good)."""
        for event_id in [i for i, e in self.events.items() if self._expired(e)]:
            del self.events[event_id], self.millis[event_id]
        return list(reversed(self.events.values()))

    def notification(self, event_id: str) -> bytes | None:
        """The body pushed to a thin destination; None once pruned."""
        with self.store.lock:
            event = self.get(event_id)
            if event is None:
                return None
            return orjson.dumps({k: event[k] for k in NOTIFIED if k in event})

    def render_or(self, fallback: Callable[[str, str | None], bytes | None]
                  ) -> Callable[[str, str | None], bytes | None]:
        """The sender's render: a thin event's notification, else ``fallback`` (snapshot)."""
        def render(event_id: str, api_version: str | None) -> bytes | None:
            if event_id in self.events:
                return self.notification(event_id)
            return fallback(event_id, api_version)
        return render
