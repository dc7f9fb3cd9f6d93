"""Stripe's form encoding: ``a[b][c]=v``, ``a[]=x``, ``a[0]=x``, into nested dicts and lists.

Stripe's API takes ``application/x-www-form-urlencoded`` bodies (and query strings) with bracket
notation; stripe-python 16 writes lists with indices (``payment_method_types[0]=konbini``) and
curl users write ``payment_method_types[]=konbini``: both must land on the same list. Values stay
strings, as on the wire; the typed readers below turn them into numbers with Stripe's messages.

Refusals (400 ``invalid_request_error``, before any handler runs): bytes that are not UTF-8,
raw or percent-encoded (Stripe's API speaks UTF-8; ``parse_qsl`` would otherwise put U+FFFD in
silently); brackets nested deeper than ``MAX_DEPTH``; a string over ``MAX_STRING`` characters
(the spec's ``maxLength: 5000`` on nearly every string parameter); an integer that is not plain
ASCII digits or does not fit Stripe's signed 64-bit integers. Amounts have their own reader:
Stripe's amount "supports up to eight digits" (docs.stripe.com/currencies, "Minimum and maximum
charge amounts"), so ``MAX_AMOUNT`` = 99,999,999 in the currency's smallest unit (¥99,999,999).
"""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import parse_qsl

from ichido.emulator.errors import invalid, missing_param, unknown_param

_PART = re.compile(r"\[([^\]]*)\]")
_INTEGER = re.compile(r"-?[0-9]+")
MAX_DEPTH = 10
MAX_STRING = 5000
INT64 = (-2 ** 63, 2 ** 63 - 1)
MAX_AMOUNT = 99_999_999


def decode(body: bytes) -> str:
    """The request body as text, or a 400: Stripe's form bodies are UTF-8."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("Invalid request: the body is not valid UTF-8.") from None


def parse(text: str) -> dict[str, Any]:
    """Decode a body or query string into nested values (dicts with 0..n keys become lists)."""
    root: dict[str, Any] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise invalid("Invalid request: a percent-encoded value is not valid UTF-8.") from None
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + (_PART.findall("[" + rest) if rest else [])
        if not head:
            raise invalid(f"Invalid request: a parameter without a name ({key[:40]!r}).")
        if len(parts) > MAX_DEPTH:
            raise invalid(f"Invalid parameter: {head} is nested more than {MAX_DEPTH} levels "
                          "deep.", param=head)
        _put(root, parts, value)
    return {name: _listify(value) for name, value in root.items()}  # the top stays a dict


def _put(node: dict[str, Any], parts: list[str], value: str) -> None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "":  # `a[]`: append, numbering after what is there
            part = str(len(node))
        if last:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {k: _listify(v) for k, v in value.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def check_known(params: Mapping[str, Any], allowed: set[str], prefix: str = "") -> None:
    """Stripe refuses a parameter it does not know (``parameter_unknown``)."""
    for key in params:
        if key not in allowed:
            raise unknown_param(f"{prefix}[{key}]" if prefix else key)


def text(params: Mapping[str, Any], name: str, *, required: bool = False,
         param: str | None = None) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_param(param or name)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {param or name}", param=param or name)
    if len(value) > MAX_STRING:
        raise invalid(f"Invalid string: {value[:20]}...; must be at most {MAX_STRING} "
                      "characters", param=param or name)
    return value


def integer(params: Mapping[str, Any], name: str, *, required: bool = False,
            param: str | None = None) -> int | None:
    raw = text(params, name, required=required, param=param)
    if raw is None:
        return None
    # Python's int() also takes "1_000", " 7 " and non-ASCII digits; Stripe does not.
    if not _INTEGER.fullmatch(raw) or len(raw) > 20 or not INT64[0] <= int(raw) <= INT64[1]:
        raise invalid(f"Invalid integer: {raw[:40]}", param=param or name)
    return int(raw)


def amount(params: Mapping[str, Any], name: str = "amount", *, required: bool = False,
           param: str | None = None, minimum: int = 1) -> int | None:
    """A money amount in the smallest unit: at least ``minimum``, at most eight digits."""
    value = integer(params, name, required=required, param=param)
    if value is None:
        return None
    if value < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.",
                      param=param or name)
    if value > MAX_AMOUNT:
        raise invalid(f"Amount must be no more than {MAX_AMOUNT:,} (eight digits) in the "
                      "currency's smallest unit, e.g. ¥99,999,999.", param=param or name,
                      code="amount_too_large")
    return value


def boolean(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    raw = text(params, name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise invalid(f"Invalid boolean: {raw}", param=name)
    return raw == "true"


def mapping(params: Mapping[str, Any], name: str, param: str | None = None) -> dict[str, Any]:
    value = params.get(name, {})
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {param or name}", param=param or name)
    return value


def strings(params: Mapping[str, Any], name: str) -> list[str]:
    value = params.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"Invalid array: {name}", param=name)
    return value


def metadata(params: Mapping[str, Any]) -> dict[str, str]:
    """``metadata[k]=v``; Stripe allows up to 50 keys of ≤ 40 characters, values ≤ 500."""
    meta = mapping(params, "metadata")
    if len(meta) > 50:
        raise invalid("You can only specify up to 50 keys in metadata.", param="metadata")
    for key, value in meta.items():
        if not isinstance(value, str) or len(key) > 40 or len(value) > 500:
            raise invalid(f"Invalid metadata[{key}]", param=f"metadata[{key}]")
    return dict(meta)


def expansions(params: Mapping[str, Any]) -> list[str]:
    """``expand[]``: "Expansions have a maximum depth of four levels" (docs.stripe.com/api/
    expanding_objects), ``data.`` of a list included."""
    paths = strings(params, "expand")
    for path in paths:
        if len(path.split(".")) > 4:
            raise invalid(f"You cannot expand more than 4 levels of a property: {path[:80]}",
                          param="expand")
    return paths
