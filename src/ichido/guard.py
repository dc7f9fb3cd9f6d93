"""The stale-event guard: handlers registered with ``latest_only=True`` see an object's events
only when they are newer than what was already applied to that object.

Per Stripe object (``data.object.id``) the guard keeps the *order key* of the last event it let
through, in the database, in the handler's own transaction: the key commits with the handler's
writes or not at all, and the inbox holds an object's events one at a time, so two workers can
never both think they are the newest.

The order key, compared left to right (``order_key``):

1. the event's ``created`` (Stripe's clock, one-second resolution);
2. the event type's place in a lifecycle: ``*.created`` before any other, ``*.deleted`` after;
3. the object's status rank (``STATUS_RANKS``): within one second an object moves forward
   along its state machine (``trialing`` → ``active``, ``requires_action`` → ``succeeded``);
4. the object's own clock: the latest of the timestamps that record something that happened
   (``canceled_at``, ``ended_at``, ``current_period_start``, ``status_transitions.*``, …);
5. the event id. Stripe's ids are random, **not** chronological: this last rule is arbitrary,
   but it is a total order, so every arrival order, duplicates included, ends on the same event.

Two events of one second that the first four rules cannot tell apart (say ``active`` →
``past_due`` → ``active`` in one second) are undecidable from their snapshots. Register with
``refetch=`` to hand the handler the object as the API has it now
(``ichido.recovery.fetch.StripeFetcher``), so what it writes is the truth whichever event wins.

An event whose key equals the stored one is the same event (a forced replay) and is applied.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Mapping

from ichido.event import Event

OrderKey = tuple[int, int, int, int, str]
#: fetches the object afresh: ``fetch(snapshot) -> object``; raises ``RetryLater`` to back off
Fetch = Callable[[Mapping[str, Any]], dict[str, Any]]

# Status ranks per object type, used only to order events of the same second (rule 3).
STATUS_RANKS: dict[str, dict[str, int]] = {
    "subscription": {"incomplete": 0, "trialing": 1, "active": 2, "past_due": 3, "paused": 3,
                     "unpaid": 4, "canceled": 5, "incomplete_expired": 5},
    "payment_intent": {"requires_payment_method": 0, "requires_confirmation": 1,
                       "requires_action": 2, "processing": 3, "requires_capture": 4,
                       "canceled": 6, "succeeded": 6},
    "invoice": {"draft": 0, "open": 1, "paid": 2, "uncollectible": 2, "void": 2},
    "refund": {"pending": 0, "requires_action": 1, "succeeded": 2, "failed": 2, "canceled": 2},
    "checkout.session": {"open": 0, "complete": 1, "expired": 1},
    "subscription_schedule": {"not_started": 0, "active": 1, "completed": 2, "released": 2,
                              "canceled": 2},
}
# Timestamps that record something that happened (never one that is scheduled, like
# ``cancel_at`` or ``trial_end``, which can move back).
HAPPENED = ("created", "canceled_at", "ended_at", "current_period_start", "paused_at")


def lifecycle(event_type: str) -> int:
    """Rule 2: an object is created before it changes, and deleted after."""
    if event_type.endswith(".created"):
        return 0
    if event_type.endswith(".deleted"):
        return 2
    return 1


def status_rank(obj: Mapping[str, Any]) -> int:
    """Rule 3. A konbini PaymentIntent whose voucher expired returns to
    ``requires_payment_method`` with an error: that is after ``requires_action``, not before."""
    kind, status = obj.get("object"), obj.get("status")
    ranks = STATUS_RANKS.get(str(kind), {})
    rank = ranks.get(str(status), 0)
    if kind == "payment_intent" and status == "requires_payment_method" \
            and obj.get("last_payment_error"):
        rank = 5
    return rank


def object_clock(obj: Mapping[str, Any]) -> int:
    """Rule 4: the latest moment the object itself records."""
    stamps = [obj.get(name) for name in HAPPENED]
    transitions = obj.get("status_transitions")
    if isinstance(transitions, Mapping):
        stamps.extend(transitions.values())
    return max((s for s in stamps if isinstance(s, int) and not isinstance(s, bool)), default=0)


def order_key(event: Event) -> OrderKey:
    obj = event.object
    return (event.created, lifecycle(event.type), status_rank(obj), object_clock(obj), event.id)


class StaleGuard:
    """Admits an event for the ``latest_only`` handlers, or calls it stale."""

    def admit(self, tx: Any, event: Event) -> bool:
        """True when ``event`` is the newest seen for its object (the guard now records it);
        False when something newer was applied already. Runs in the handlers' transaction."""
        object_id = event.object.get("id")
        if not isinstance(object_id, str):
            return True  # nothing to order by: every event applies
        key = order_key(event)
        row = tx.execute("SELECT event_created, lifecycle, status_rank, object_clock, event_id"
                         " FROM ichido_applied WHERE object_id = ?", (object_id,)).fetchone()
        if row is not None:
            stored: OrderKey = (int(row[0]), int(row[1]), int(row[2]), int(row[3]), str(row[4]))
            if key < stored:
                return False
            if key == stored:
                return True  # the same event again (a forced replay): nothing to record
        tx.execute(
            "INSERT INTO ichido_applied (object_id, event_id, event_created, lifecycle,"
            " status_rank, object_clock, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (object_id) DO UPDATE SET event_id = excluded.event_id,"
            " event_created = excluded.event_created, lifecycle = excluded.lifecycle,"
            " status_rank = excluded.status_rank, object_clock = excluded.object_clock,"
            " applied_at = excluded.applied_at",
            (object_id, key[4], key[0], key[1], key[2], key[3], time.time()))
        return True


def with_object(event: Event, obj: dict[str, Any]) -> Event:
    """The same event carrying ``obj`` (a re-fetched object) as ``data.object``."""
    payload = dict(event.payload)
    payload["data"] = {**(payload.get("data") or {}), "object": obj}
    return replace(event, payload=payload)
