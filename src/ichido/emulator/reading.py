"""The read-only endpoints: events with Stripe's filters, and charges, balance transactions and
payment methods by id or in lists.

Events API (docs.stripe.com/api/events/list): newest first; ``type`` (a ``*`` wildcard is
allowed, e.g. ``payment_intent.*``) or ``types[]`` (up to 20, not both); ``created`` as a
timestamp or ``created[gt|gte|lt|lte]``; ``delivery_success`` (true: every endpoint answered
2xx, i.e. ``pending_webhooks == 0``; false: still pending or failed); cursors
``starting_after`` / ``ending_before``; ``limit`` 1–100. Only the last 30 days are kept.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable

from ichido.emulator import forms
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, page

EVENT_FILTERS = {"type", "types", "created", "delivery_success", "limit", "starting_after",
                 "ending_before", "expand"}
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}


def list_events(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    forms.check_known(params, EVENT_FILTERS)
    events = store.live_events()
    kind, kinds = forms.text(params, "type"), forms.strings(params, "types")
    if kind and kinds:
        raise invalid("You may only specify one of these parameters: type, types.",
                      param="types")
    if len(kinds) > 20:
        raise invalid("You may pass at most 20 event types.", param="types")
    patterns = kinds or ([kind] if kind else [])
    if patterns:
        events = [e for e in events if any(fnmatch.fnmatchcase(e["type"], p) for p in patterns)]
    bounds = created_bounds(params)
    events = [e for e in events if all(_COMPARE[op](e["created"], v) for op, v in bounds)]
    if "delivery_success" in params:
        wanted = forms.boolean(params, "delivery_success")
        events = [e for e in events if (e["pending_webhooks"] == 0) == wanted]
    return page(events, params, "/v1/events", "event")


def created_bounds(params: dict[str, Any]) -> list[tuple[str, int]]:
    """``created=T`` or ``created[gt|gte|lt|lte]=T``, read (and refused) before any filtering."""
    rule = params.get("created")
    if rule is None or rule == "":
        return []
    if isinstance(rule, str):
        value = forms.integer(params, "created")
        return [("gte", value), ("lte", value)] if value is not None else []
    if not isinstance(rule, dict):
        raise invalid("Invalid created filter", param="created")
    forms.check_known(rule, set(_COMPARE), "created")
    bounds = [(op, forms.integer(rule, op, param=f"created[{op}]")) for op in rule]
    return [(op, value) for op, value in bounds if value is not None]


def retrieve(store: Store, kind: str, param: str) -> Callable[..., dict[str, Any]]:
    """A ``GET /v1/<things>/{id}`` handler for objects the emulator only shows."""
    def handler(object_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return store.get(kind, object_id, param)
    return handler


def listing(store: Store, kind: str, url: str, *filters: str) -> Callable[..., dict[str, Any]]:
    """A ``GET /v1/<things>`` handler, newest first, filtered on exact field values."""
    def handler(params: dict[str, Any]) -> dict[str, Any]:
        items = list(reversed(store.objects[kind].values()))
        for name in filters:
            if params.get(name):
                items = [item for item in items if item.get(name) == params[name]]
        return page(items, params, url, kind)
    return handler
