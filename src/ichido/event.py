"""Stripe events: the few fields checked at the door, and the object handlers receive."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec
import orjson

from ichido.errors import RejectedDelivery
from ichido.json_limits import Unreadable, check_readable, may_hold_integers_past_64_bits
from ichido.thin.notification import OBJECT as THIN_OBJECT, read_notification


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

# What every store can hold (PostgreSQL BIGINT and TEXT, SQLite INTEGER), checked before the
# batch so that one unstorable event is refused alone instead of failing its neighbours (I5).
INT64 = (-(2**63), 2**63 - 1)
MAX_ID_LENGTH = 255  # Stripe's ids are about 30 characters; types about 50
_ID = re.compile(r"[!-~]+")  # printable ASCII, no space: nothing a log line or terminal acts on


def parse_delivery(body: bytes) -> Delivery:
    """Read the fields the inbox needs; refuse what is not a Stripe event, or what Stripe's SDK
    (``stripe.Webhook.construct_event`` for a snapshot, ``parse_event_notification`` for a thin
    notification) would refuse, or what no store could hold.

    Raises ``RejectedDelivery`` with ``invalid_utf8``, ``malformed_json``, ``nesting_too_deep``,
    ``integer_too_long`` (ichido.json_limits), ``not_an_event``, ``invalid_characters``,
    ``value_out_of_range`` or ``field_too_long``.
    """
    if not body.isascii():  # msgspec skips the strings it does not decode unchecked
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RejectedDelivery(f"body is not valid UTF-8 (byte {exc.start})",
                                   code="invalid_utf8") from None
    try:
        head = _decode_head(body)
    except msgspec.ValidationError:  # valid JSON of another shape: judge it field by field
        return _parse_other_shape(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise RejectedDelivery(f"body is not valid JSON: {exc}", code="malformed_json") from None
    except RecursionError:  # msgspec gives up near 975 levels; the fixed limit is checked below
        raise _too_deep() from None
    _check_readable(body)
    if head.object == THIN_OBJECT:
        return _thin(Event.parse(body), body)
    obj = head.data.object if head.data is not None else None
    return _checked(head.id, head.type, head.created, head.object,
                    obj.id if obj is not None else None, body)


def _parse_other_shape(body: bytes) -> Delivery:
    _check_readable(body)  # valid JSON (msgspec said so), maybe beyond what json.loads reads
    try:
        doc = Event.parse(body)
    except ValueError as exc:
        raise RejectedDelivery(f"body is not valid JSON: {exc}", code="malformed_json") from None
    except RecursionError:
        raise _too_deep() from None
    if not isinstance(doc, dict):
        raise RejectedDelivery("body is JSON but not an object", code="not_an_event")
    if doc.get("object") == THIN_OBJECT:
        return _thin(doc, body)
    data = doc.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return _checked(doc.get("id"), doc.get("type"), doc.get("created"), doc.get("object"),
                    obj.get("id") if isinstance(obj, dict) else None, body)


def _check_readable(body: bytes) -> None:
    try:
        check_readable(body)
    except Unreadable as exc:
        raise RejectedDelivery(str(exc), code=exc.code) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise RejectedDelivery(f"body is not valid JSON: {exc}", code="malformed_json") from None


def _too_deep() -> RejectedDelivery:
    """A parser's recursion limit reached (msgspec's, or Python's ``json``)."""
    return RejectedDelivery("JSON nested deeper than the decoder's recursion limit",
                            code="nesting_too_deep")


def _checked(event_id: Any, event_type: Any, created: Any, kind: Any, object_id: Any,
             body: bytes) -> Delivery:
    problem = None
    if kind != "event":
        problem = 'object is not "event"'
    elif not isinstance(event_id, str) or not event_id.startswith("evt_"):
        problem = "id is not an evt_ id"
    elif not isinstance(event_type, str) or not event_type:
        problem = "type is missing"
    elif not isinstance(created, int) or isinstance(created, bool):
        problem = "created is not an integer"
    if problem:
        raise RejectedDelivery(f"not a Stripe event: {problem}", code="not_an_event")
    _check_storable(event_id, event_type, created, object_id)
    return Delivery(event_id, event_type, created,
                    object_id if isinstance(object_id, str) else None, body)


def _thin(doc: Any, body: bytes) -> Delivery:
    """A thin notification (``ichido.thin.notification``): its id is the dedupe key in both
    tiers, ``related_object.id`` is its object."""
    if not isinstance(doc, dict) or doc.get("object") != THIN_OBJECT:
        raise RejectedDelivery('not a Stripe event: object is not "v2.core.event"',
                               code="not_an_event")
    note = read_notification(doc)
    problem = None
    if not isinstance(note.id, str) or not note.id.startswith("evt_"):
        problem = "id is not an evt_ id"
    elif not isinstance(note.type, str) or not note.type:
        problem = "type is missing"
    if problem:
        raise RejectedDelivery(f"not a Stripe event: {problem}", code="not_an_event")
    _check_storable(note.id, note.type, note.created, note.object_id, "related_object.id")
    return Delivery(note.id, note.type, note.created,
                    note.object_id if isinstance(note.object_id, str) else None, body)


def _check_storable(event_id: str, event_type: str, created: int, object_id: Any,
                    object_field: str = "data.object.id") -> None:
    if not INT64[0] <= created <= INT64[1]:
        raise RejectedDelivery(f"created {created} is outside the 64-bit range",
                               code="value_out_of_range")
    for name, value in (("id", event_id), ("type", event_type), (object_field, object_id)):
        if not isinstance(value, str):
            continue
        if len(value) > MAX_ID_LENGTH:
            raise RejectedDelivery(f"{name} is longer than {MAX_ID_LENGTH} characters",
                                   code="field_too_long")
        if not (value.isprintable() if name == "type" else _ID.fullmatch(value)):
            # the repr names the characters without printing them (no forged log line)
            raise RejectedDelivery(f"{name} holds characters an id cannot: {value[:40]!r}",
                                   code="invalid_characters")


@dataclass(frozen=True)
class Event:
    """What a handler gets, whichever shape the event came in (``shape``).

    A ``"snapshot"`` event is the event as Stripe sent it, parsed once; ``object`` is
    ``data.object``, the object at the moment of the event, which handlers should trust over
    re-fetching it from the API. A ``"thin"`` event is a notification completed by the worker's
    fetch stage (``ichido.thin.fetch``): ``payload`` is the event as ``GET /v2/core/events/{id}``
    gives it, ``object`` the related object as it was fetched, and ``type`` the snapshot's name
    of the change (``payment_intent.succeeded`` for ``v1.payment_intent.succeeded``), so that one
    handler serves both shapes. A ``"recovery"`` event stands for one Stripe failed to generate
    (``ichido.thin.recovered``): ``type`` is the change its health alert names, ``object`` that
    object as it was fetched when the alert came, ``recovered_from`` the alert's id, and
    ``payload`` the alert itself.
    """

    id: str
    type: str
    created: int
    payload: dict[str, Any] = field(repr=False)
    attempt: int = 1
    #: the reasons given by ``ignore``; read by the worker after the handlers ran
    ignored: list[str] = field(default_factory=list, repr=False, compare=False)
    shape: str = "snapshot"  # or "thin", or "recovery"
    #: a thin event's related object, fetched (None: it has none, or no handler needs it)
    fetched_object: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: a recovery's health alert (``healt_…``): the id the change is applied once under
    recovered_from: str | None = None

    @classmethod
    def from_body(cls, body: bytes, attempt: int = 1) -> "Event":
        doc = cls.parse(body)
        return cls(doc["id"], doc["type"], doc["created"], doc, attempt)

    @staticmethod
    def parse(body: bytes) -> Any:
        """Whatever the receiver accepted parses here, to what Stripe's SDK would read: orjson,
        and Python's own parser (the SDK's) for the few valid JSON documents orjson refuses (a
        number beyond a double, such as 1e400, which the SDK reads as infinity) or reads
        otherwise (an integer beyond 64 bits, which orjson makes a float)."""
        if may_hold_integers_past_64_bits(body):
            return json.loads(body)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return json.loads(body)

    @property
    def object(self) -> dict[str, Any]:
        if self.shape != "snapshot":
            return self.fetched_object or {}
        return self.payload.get("data", {}).get("object") or {}

    @property
    def previous_attributes(self) -> dict[str, Any]:
        """A snapshot's ``data.previous_attributes`` (a thin event has ``changes`` instead)."""
        data = self.payload.get("data")
        return (data.get("previous_attributes") or {}) if isinstance(data, dict) else {}

    @property
    def snapshot_event(self) -> str | None:
        """A thin event's twin: the id of the snapshot event of the same change."""
        return self.payload.get("snapshot_event") if self.shape == "thin" else None

    def ignore(self, reason: str) -> None:
        """Say that this event is none of the handler's business, and why (a reason code, e.g.
        ``unknown_subscription`` or ``unsupported_api_version:2023-10-16``). When every handler
        that ran said so, the worker marks the event ``ignored`` with the reasons as its
        ``last_error`` (shown by ``ichido events show`` and the dashboard) instead of
        ``processed``. What the handler wrote is committed either way; ignoring is no rollback."""
        self.ignored.append(reason)

    def __getitem__(self, key: str) -> Any:
        """``event["data"]["object"]`` works as it does on a parsed Stripe event."""
        return self.payload[key]
