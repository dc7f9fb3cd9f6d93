"""Reading a thin notification at the door: accepted exactly when Stripe's SDK accepts it.

``StripeClient.parse_event_notification`` checks the signature (``ichido.signature`` does that
first, the same way), then builds the typed notification class of the event's type, whose
constructor is the only statement of what each of Stripe's 326 thin types must carry (a
``related_object`` with an id, one without, or none). ichido runs that same constructor on the
parsed body, so the two can never disagree, and then refuses what no store could hold. It costs
about 9 µs; thin notifications are small.

This module knows nothing of ``ichido.event``: it gives back the fields, the door builds the
``Delivery``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from ichido.errors import RejectedDelivery

OBJECT = "v2.core.event"
# RFC 3339 date-time, as Stripe writes ``created`` ("2026-10-01T10:00:00.000Z"); what
# ``datetime.fromisoformat`` reads besides (week dates, a date alone) is not a time of Stripe's.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


class Notification(NamedTuple):
    """What the door keeps of a thin notification (its body is kept byte for byte)."""

    id: Any
    type: Any
    created: int
    object_id: Any  # ``related_object.id``, when there is one


_door_client: Any = None


def read_notification(doc: Any) -> Notification:
    """The fields of a parsed thin body, or ``RejectedDelivery`` (``not_an_event``) when
    Stripe's SDK would refuse it or its ``created`` is not an RFC 3339 time."""
    global _door_client
    from stripe import StripeClient
    from stripe.v2.core._event import EventNotification

    if _door_client is None:  # never sends a request: the constructor only binds a context
        _door_client = StripeClient("sk_door_never_calls")
    try:
        EventNotification.from_json(doc, _door_client)
    except Exception as exc:  # KeyError, TypeError, ValueError, AttributeError: the SDK refuses
        raise RejectedDelivery(f"not a thin event notification Stripe's SDK reads: "
                               f"{type(exc).__name__}", code="not_an_event") from None
    related = doc.get("related_object")
    object_id = related.get("id") if isinstance(related, dict) else None
    return Notification(doc["id"], doc["type"], created_seconds(doc["created"]), object_id)


def created_seconds(created: Any) -> int:
    """``created`` as Unix seconds (rounded down), what the inbox orders and filters by."""
    if not isinstance(created, str) or not _RFC3339.fullmatch(created):
        raise RejectedDelivery("not a Stripe event: created is not an RFC 3339 time",
                               code="not_an_event")
    try:
        moment = datetime.fromisoformat(created.upper().replace("Z", "+00:00"))
    except ValueError:  # a month 13, a second 61
        raise RejectedDelivery("not a Stripe event: created is not a valid time",
                               code="not_an_event") from None
    return int(moment.timestamp() // 1)
