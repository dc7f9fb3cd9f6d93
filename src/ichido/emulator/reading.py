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

from ichido.emulator import forms, objects
from ichido.emulator.errors import invalid, no_such
from ichido.emulator.state import Store

EVENT_FILTERS = {"type", "types", "created", "delivery_success", "limit", "starting_after",
                 "ending_before", "expand"}
PAGING = {"limit", "starting_after", "ending_before", "expand", "created"}
COMPARE: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}


def list_events(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    forms.check_known(params, EVENT_FILTERS)
    everything = events = store.live_events()
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
    events = [e for e in events if all(COMPARE[op](e["created"], v) for op, v in bounds)]
    if "delivery_success" in params:
        wanted = forms.boolean(params, "delivery_success")
        events = [e for e in events if (e["pending_webhooks"] == 0) == wanted]
    return page(events, params, "/v1/events", "event", everything)


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
    forms.check_known(rule, set(COMPARE), "created")
    bounds = [(op, forms.integer(rule, op, param=f"created[{op}]")) for op in rule]
    return [(op, value) for op, value in bounds if value is not None]


def retrieve(store: Store, kind: str, param: str) -> Callable[..., dict[str, Any]]:
    """A ``GET /v1/<things>/{id}`` handler for objects the emulator only shows."""
    def handler(object_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return store.get(kind, object_id, param)
    return handler


def listing(store: Store, kind: str, url: str, *filters: str) -> Callable[..., dict[str, Any]]:
    """A ``GET /v1/<things>`` handler, newest first, filtered on exact field values and on
    ``created``. A filter it does not apply is refused, never ignored: a list that silently
    ignores ``customer=...`` would hand back everyone's objects."""
    def handler(params: dict[str, Any]) -> dict[str, Any]:
        for name in params:
            if name not in PAGING and name not in filters:
                raise invalid(f"Received unknown parameter: {name} (this list filters on "
                              f"{', '.join(filters) or 'created only'})", param=name,
                              code="parameter_unknown")
        items = everything = list(reversed(store.objects[kind].values()))
        if "test_clock" in filters and not params.get("test_clock"):
            # "The response will not include customers with test clocks if this parameter is
            # not set" (docs.stripe.com/api/customers/list): a clock's objects are its own.
            items = [item for item in items if not item.get("test_clock")]
        for name in filters:
            if params.get(name):
                wanted = forms.text(params, name)
                items = [item for item in items if _wire(item.get(name)) == wanted]
        bounds = created_bounds(params)
        items = [i for i in items if all(COMPARE[op](i["created"], v) for op, v in bounds)]
        return page(items, params, url, kind, everything)
    return handler


def _wire(value: Any) -> Any:
    """A field as a query string spells it: ``true``/``false`` for booleans."""
    return ("true" if value else "false") if isinstance(value, bool) else value


def page(items: list[dict[str, Any]], params: dict[str, Any], url: str, kind: str,
         everything: list[dict[str, Any]]) -> dict[str, Any]:
    """Stripe's cursor pagination over newest-first ``items`` (a filtered ``everything``).

    A cursor is a position, not a member of the page: an object that stopped matching the
    filter between two pages (an event delivered meanwhile, during a ``delivery_success=false``
    sweep) still marks where the next page starts. An unknown cursor is a 404.
    """
    limit = forms.integer(params, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    after = forms.text(params, "starting_after")
    before = forms.text(params, "ending_before")
    if after and before:
        raise invalid("You may only specify one of these parameters: ending_before, "
                      "starting_after.", param="ending_before")
    position = {item["id"]: i for i, item in enumerate(everything)}
    for name, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor and cursor not in position:
            raise no_such(kind, cursor, name)
    if before:
        earlier = [item for item in items if position[item["id"]] < position[before]]
        return objects.list_object(earlier[-limit:], url, len(earlier) > limit)
    rest = [item for item in items if position[item["id"]] > position[after]] \
        if after else items
    return objects.list_object(rest[:limit], url, len(rest) > limit)
