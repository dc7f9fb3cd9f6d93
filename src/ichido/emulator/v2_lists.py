"""Stripe's v2 lists: ``{data, next_page_url, previous_page_url}``, paged by opaque URLs.

A v2 list has no ``has_more`` and no ``starting_after``: the answer carries the URL of the next
page and of the previous one (null at either end), and the SDK's ``auto_paging_iter`` follows
``next_page_url`` as it is. Here the URL's one parameter, ``page``, is a token holding the
list's filters, its page size and where the page starts, so a page is the same whatever else
the caller sends; anything sent beside ``page`` is refused rather than silently dropped.
Items are newest first; the cursor is an item's sort key, so a page does not shift when newer
items arrive meanwhile.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable, Sequence

import orjson

from ichido.emulator.errors import invalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
Key = Sequence[Any]  # an item's sort key (newest first = largest first)


def limit(params: dict[str, Any]) -> int:
    raw = params.get("limit", DEFAULT_LIMIT)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid(f"limit must be an integer, got {str(raw)[:20]!r}.", param="limit",
                      code="parameter_invalid") from None
    if not 1 <= value <= MAX_LIMIT:
        raise invalid(f"limit must be from 1 to {MAX_LIMIT}.", param="limit",
                      code="parameter_invalid")
    return value


def opened(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The list's parameters and cursor: from the ``page`` token when there is one."""
    if "page" not in params:
        return params, None
    if len(params) > 1:
        others = sorted(set(params) - {"page"})
        raise invalid(f"page carries the list's parameters; do not send {', '.join(others)} "
                      "with it.", param=others[0], code="parameter_invalid")
    try:
        token = orjson.loads(base64.urlsafe_b64decode(str(params["page"]).encode()))
        return dict(token["params"]), dict(token["cursor"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise invalid("page is not a page token this list gave.", param="page",
                      code="parameter_invalid") from None


def page(items: list[dict[str, Any]], params: dict[str, Any], url: str,
         key: Callable[[dict[str, Any]], Key]) -> dict[str, Any]:
    """One page of ``items`` (already filtered, newest first by ``key``)."""
    listed, cursor = opened(params)
    size = limit(listed)
    keyed = [(list(key(item)), item) for item in items]
    if cursor is None:
        chosen = keyed[:size]
    elif "after" in cursor:
        chosen = [pair for pair in keyed if pair[0] < cursor["after"]][:size]
    else:
        chosen = [pair for pair in keyed if pair[0] > cursor["before"]][-size:]
    first = chosen[0][0] if chosen else None
    last = chosen[-1][0] if chosen else None
    older = last is not None and any(k < last for k, _ in keyed)
    newer = first is not None and any(k > first for k, _ in keyed)
    return {"data": [item for _, item in chosen],
            "next_page_url": _url(url, listed, {"after": last}) if older else None,
            "previous_page_url": _url(url, listed, {"before": first}) if newer else None}


def _url(url: str, params: dict[str, Any], cursor: dict[str, Any]) -> str:
    token = orjson.dumps({"params": params, "cursor": cursor})
    return f"{url}?page={base64.urlsafe_b64encode(token).decode()}"
