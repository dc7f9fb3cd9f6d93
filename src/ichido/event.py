"""Stripe events: the few fields checked at the door, and the object handlers receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec
import orjson

from ichido.errors import RejectedDelivery


class Delivery(NamedTuple):
    """A verified delivery, reduced to what the inbox stores. ``body`` is kept byte for byte.

    A named tuple: one is built per request on the hot path, where a frozen dataclass's
    ``__init__`` would cost about as much as decoding the fields it holds."""

    id: str
    type: str
    created: int
    object_id: str | None
    body: bytes


class _Object(msgspec.Struct):
    id: Any = None


class _Data(msgspec.Struct):
    object: _Object | None = None


class _Head(msgspec.Struct):
    """The fields checked at the door. Decoding only these (the rest of the body is checked
    as JSON and skipped) costs a third of building the whole document."""

    id: Any = None
    type: Any = None
    created: Any = None
    object: Any = None
    data: _Data | None = None


_decode_head = msgspec.json.Decoder(_Head).decode


def parse_delivery(body: bytes) -> Delivery:
    """Read the fields the inbox needs; refuse what is not a Stripe event.

    Raises ``RejectedDelivery`` with ``malformed_json`` or ``not_an_event``.
    """
    try:
        head = _decode_head(body)
    except msgspec.ValidationError:  # valid JSON of another shape: judge it field by field
        return _parse_other_shape(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise RejectedDelivery(f"body is not valid JSON: {exc}", code="malformed_json") from None
    obj = head.data.object if head.data is not None else None
    return _checked(head.id, head.type, head.created, head.object,
                    obj.id if obj is not None else None, body)


def _parse_other_shape(body: bytes) -> Delivery:
    doc = orjson.loads(body)
    if not isinstance(doc, dict):
        raise RejectedDelivery("body is JSON but not an object", code="not_an_event")
    data = doc.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return _checked(doc.get("id"), doc.get("type"), doc.get("created"), doc.get("object"),
                    obj.get("id") if isinstance(obj, dict) else None, body)


def _checked(event_id: Any, event_type: Any, created: Any, kind: Any, object_id: Any,
             body: bytes) -> Delivery:
    problem = None
    if kind != "event":
        problem = 'object is not "event"'
    elif not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > 255:
        problem = "id is not an evt_ id"
    elif not isinstance(event_type, str) or not event_type:
        problem = "type is missing"
    elif not isinstance(created, int) or isinstance(created, bool):
        problem = "created is not an integer"
    if problem:
        raise RejectedDelivery(f"not a Stripe event: {problem}", code="not_an_event")
    return Delivery(event_id, event_type, created,
                    object_id if isinstance(object_id, str) else None, body)


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
