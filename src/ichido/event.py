"""Stripe events: the few fields checked at the door, and the object handlers receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ichido.errors import RejectedDelivery


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified delivery, reduced to what the inbox stores. ``body`` is kept byte for byte."""

    id: str
    type: str
    created: int
    object_id: str | None
    body: bytes


def parse_delivery(body: bytes) -> Delivery:
    """Read the fields the inbox needs; refuse what is not a Stripe event.

    Raises ``RejectedDelivery`` with ``malformed_json`` or ``not_an_event``.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RejectedDelivery(f"body is not valid JSON: {exc}", code="malformed_json") from None
    if not isinstance(doc, dict):
        raise RejectedDelivery("body is JSON but not an object", code="not_an_event")
    event_id, event_type, created = doc.get("id"), doc.get("type"), doc.get("created")
    problem = None
    if doc.get("object") != "event":
        problem = 'object is not "event"'
    elif not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > 255:
        problem = "id is not an evt_ id"
    elif not isinstance(event_type, str) or not event_type:
        problem = "type is missing"
    elif not isinstance(created, int) or isinstance(created, bool):
        problem = "created is not an integer"
    if problem:
        raise RejectedDelivery(f"not a Stripe event: {problem}", code="not_an_event")
    data = doc.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    object_id = obj.get("id") if isinstance(obj, dict) else None
    return Delivery(
        event_id, event_type, created, object_id if isinstance(object_id, str) else None, body
    )


@dataclass(frozen=True)
class Event:
    """What a handler gets: the event as Stripe sent it, parsed once.

    ``object`` is ``data.object``: the snapshot of the object at the moment of the event, which
    handlers should trust over re-fetching it from the API.
    """

    id: str
    type: str
    created: int
    payload: dict[str, Any] = field(repr=False)
    attempt: int = 1

    @classmethod
    def from_body(cls, body: bytes, attempt: int = 1) -> "Event":
        doc = orjson.loads(body)
        return cls(doc["id"], doc["type"], doc["created"], doc, attempt)

    @property
    def object(self) -> dict[str, Any]:
        return self.payload.get("data", {}).get("object") or {}

    @property
    def previous_attributes(self) -> dict[str, Any]:
        return self.payload.get("data", {}).get("previous_attributes") or {}

    def __getitem__(self, key: str) -> Any:
        """``event["data"]["object"]`` works as it does on a parsed Stripe event."""
        return self.payload[key]
