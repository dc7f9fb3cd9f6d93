"""The emulator's memory: objects by id, the event log, an advanceable clock, due transitions.

One lock guards everything: routes run on the server's event loop, while tests and the CLI may
advance the clock from another thread. Work that Stripe does later (a konbini voucher paid after
three minutes, a voucher or a refund expiring) is a *due transition* keyed on the emulator
clock; it fires on the next request, on the server's ticker, or when the clock is advanced.
"""

from __future__ import annotations

import contextvars
import heapq
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import orjson

from ichido.emulator import objects, versions
from ichido.emulator.errors import invalid, no_such
from ichido.emulator.journal import Journal

EVENT_RETENTION = 30 * 86400  # "events older than 30 days cannot be retrieved" (docs: Events API)
NO_REQUEST: dict[str, str | None] = {"id": None, "idempotency_key": None}
# The API request being served: events it causes carry it as `request` (docs: event object).
REQUEST: contextvars.ContextVar[dict[str, str | None]] = contextvars.ContextVar(
    "emulator_request", default=NO_REQUEST)
KINDS = {"pi": "payment_intent", "ch": "charge", "txn": "balance_transaction", "re": "refund",
         "pm": "payment_method", "evt": "event", "cus": "customer", "prod": "product",
         "price": "price", "sub": "subscription", "in": "invoice", "cs": "checkout.session",
         "seti": "setup_intent", "clock": "test_helpers.test_clock", "ii": "invoiceitem",
         "dp": "dispute", "card": "card", "sub_sched": "subscription_schedule",
         "inpay": "invoice_payment", "ccsbtxn": "customer_cash_balance_transaction"}
# Kinds whose ids carry no prefix of their own (a coupon's is its code; a plan's is any id).
UNPREFIXED = ("coupon", "plan")


@dataclass
class Clock:
    """Wall time plus an offset that only grows: ``advance`` is how tests let days pass."""

    offset: float = 0.0

    def now(self) -> int:
        return int(time.time() + self.offset)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        self.offset += seconds

    def move_to(self, when: int) -> None:
        """Forward to the Unix second ``when`` (never back)."""
        self.offset = max(self.offset, when - time.time() + 1e-3)


def snapshot(obj: Any) -> Any:
    """A deep copy: an event keeps the object as it was, whatever happens to it later."""
    return orjson.loads(orjson.dumps(obj))


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """``previous_attributes``: the old value of every top-level field that changed."""
    return {k: before.get(k) for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k)}


@dataclass
class Store:
    clock: Clock = field(default_factory=Clock)
    # An event's pending_webhooks at birth: the endpoints that take its type.
    endpoints_enabled: Callable[[str], int] = lambda event_type: 0
    public_url: str = "http://127.0.0.1:12111"
    api_version: str = versions.DEFAULT  # the account's default: events are rendered in it
    # False when Stripe fails to generate an event: it is never stored, listed or sent
    # (the chaos knob in thin_events, which later sends the health alert).
    generates: Callable[[dict[str, Any]], bool] = lambda event: True
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {
            k: {} for k in (*KINDS.values(), *UNPREFIXED)}
        self.private: dict[str, dict[str, Any]] = {}  # what Stripe knows but does not show
        self.vouchers: dict[str, str] = {}  # hosted voucher token -> payment intent id
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.due_actions: dict[str, Callable[[str, str], None]] = {}
        self._due: list[tuple[int, int, str, str, str]] = []
        self._seq = 0
        self.journal: Journal | None = None  # open while an API request runs

    # -- one request: all or nothing (see journal) -----------------------------------------
    def begin(self) -> None:
        self.journal = Journal()

    def commit(self) -> None:
        journal, self.journal = self.journal, None
        for event in journal.events if journal else ():
            self._announce(event)

    def undo(self) -> None:
        journal, self.journal = self.journal, None
        if journal is None:
            return
        journal.restore(self.objects)
        if journal.scheduled:
            self._due = [d for d in self._due if d[1] not in journal.scheduled]
            heapq.heapify(self._due)

    # -- objects ---------------------------------------------------------------------------
    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = self.objects[obj["object"]]
        if self.journal is not None and obj["id"] not in kind:
            self.journal.added.append((obj["object"], obj["id"]))
        kind[obj["id"]] = obj
        return obj

    def delete(self, kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
        """Remove an object for good (``DELETE /v1/...``); an undone request puts it back.
        Returns it as it was, which the ``*.deleted`` event carries."""
        obj = self.get(kind, object_id, param)
        if self.journal is not None:
            self.journal.removed.append(obj)
        del self.objects[kind][object_id]
        return obj

    def get(self, kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
        """The live object (handlers change it in place; an open journal keeps a copy)."""
        found = self.objects[kind].get(object_id)
        if found is None or (kind == "event" and self._expired(found)):
            raise no_such(kind, object_id, param)
        if self.journal is not None:
            self.journal.touched(found)
        return found

    def find(self, object_id: str) -> dict[str, Any] | None:
        prefix = "sub_sched" if object_id.startswith("sub_sched_") else object_id.split("_", 1)[0]
        kind = KINDS.get(prefix)
        return self.objects[kind].get(object_id) if kind else None

    # -- events ----------------------------------------------------------------------------
    def emit(self, event_type: str, obj: dict[str, Any],
             before: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record that ``obj`` changed (from ``before``, on an update); every listener (the
        webhook sender) hears of it. The event keeps the emulator's own snapshots: it is
        rendered in its ``api_version`` when read, or in an endpoint's when sent there."""
        event = objects.event(event_type, snapshot(obj), self.clock.now(),
                              self.endpoints_enabled(event_type),
                              dict(REQUEST.get()), before, self.api_version)
        if not self.generates(event):
            return event
        self.add(event)
        if self.journal is not None:
            self.journal.events.append(event)
        else:
            self._announce(event)
        return event

    def _announce(self, event: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(event)

    def emit_update(self, event_type: str, obj: dict[str, Any],
                    before: dict[str, Any]) -> dict[str, Any]:
        return self.emit(event_type, obj, snapshot(before))

    def mark_delivered(self, event_id: str) -> None:
        """One more endpoint answered 2xx: Stripe counts ``pending_webhooks`` down."""
        with self.lock:
            event = self.objects["event"].get(event_id)
            if event and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1

    def render_event(self, event_id: str, api_version: str | None = None) -> bytes | None:
        """The webhook body, as it is now (``pending_webhooks`` included), in the endpoint's
        ``api_version`` (None: the event's own); None once pruned."""
        with self.lock:
            event = self.objects["event"].get(event_id)
            if event is None or self._expired(event):
                return None
            if api_version is not None:
                event = {**event, "api_version": api_version}
            return orjson.dumps(versions.render(event, versions.Version(event["api_version"])),
                                option=orjson.OPT_INDENT_2)

    def _expired(self, event: Mapping[str, Any]) -> bool:
        return event["created"] < self.clock.now() - EVENT_RETENTION

    def live_events(self) -> list[dict[str, Any]]:
        """Newest first, without those older than 30 days (they are gone for good)."""
        events = self.objects["event"]
        for event_id in [i for i, e in events.items() if self._expired(e)]:
            del events[event_id]
        return list(reversed(events.values()))

    # -- due transitions -------------------------------------------------------------------
    def schedule(self, at: int, action: str, object_id: str, token: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._due, (at, self._seq, action, object_id, token))
        if self.journal is not None:
            self.journal.scheduled.add(self._seq)

    def fire_due(self) -> int:
        """Run every transition whose time has come; they belong to no API request."""
        fired = 0
        reset = REQUEST.set(NO_REQUEST)
        try:
            while self._due and self._due[0][0] <= self.clock.now():
                _, _, action, object_id, token = heapq.heappop(self._due)
                self.due_actions[action](object_id, token)
                fired += 1
        finally:
            REQUEST.reset(reset)
        return fired

    def advance(self, seconds: float) -> int:
        """Move forward, firing each due transition at its own time: a renewal due on day 30
        of a 90-day jump happens on day 30, and what it schedules (the invoice's finalization
        an hour later, the next renewal) follows from there."""
        with self.lock:
            target = self.clock.now() + seconds
            fired = 0
            while self._due and self._due[0][0] <= target:
                self.clock.move_to(self._due[0][0])
                fired += self.fire_due()
            self.clock.advance(max(0.0, target - self.clock.now()))
            return fired + self.fire_due()

    # -- reading ---------------------------------------------------------------------------
    def expand(self, obj: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
        out = snapshot(obj)
        for path in paths:
            self._expand(out, path.split("."), path)
        return out

    def _expand(self, node: Any, parts: list[str], path: str) -> None:
        if not parts or not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        if node.get("object") == "list" and head == "data":
            for item in node["data"]:
                self._expand(item, rest, path)
            return
        if head == "payments" and node.get("object") == "invoice":  # includable, not stored
            node["payments"] = objects.list_object(
                [snapshot(p) for p in self.objects["invoice_payment"].values()
                 if p["invoice"] == node["id"]], f"/v1/invoices/{node['id']}/payments", False)
        value = node.get(head)
        if isinstance(value, str) and self.find(value) is not None:
            value = node[head] = snapshot(self.find(value))
        elif not isinstance(value, dict) and value is not None:
            raise invalid(f"This property cannot be expanded ({head}).", param="expand")
        self._expand(value, rest, path)

