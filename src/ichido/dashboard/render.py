"""How the pages are drawn: the Jinja2 environment (autoescape on everything), the filters
that format times and mask secrets, the headers every page carries, and the bounded form reader.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Mapping
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from starlette.requests import Request

MAX_FORM_BYTES = 16 * 1024
# Secrets have recognisable shapes; a payload or a traceback that quotes one shows it masked.
SECRET_SHAPES = re.compile(r"\b(whsec|sk_live|sk_test|rk_live|rk_test)_[A-Za-z0-9]+")
SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'none'; style-src 'self'; script-src 'self';"
                                " img-src 'self' data:; form-action 'self'; base-uri 'none';"
                                " frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # no-referrer would make Chromium send Origin: null
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


def redact(text: str | None) -> str:
    return SECRET_SHAPES.sub(lambda m: f"{m.group(1)}_***", text or "")


def when(timestamp: float | None, zone: dt.tzinfo = dt.timezone.utc) -> str:
    """A moment in ``zone``, named by its abbreviation (``UTC``, ``JST``)."""
    if timestamp is None:
        return "—"
    return dt.datetime.fromtimestamp(float(timestamp), zone).strftime("%Y-%m-%d %H:%M:%S %Z")


@pass_context
def when_here(context: Context, timestamp: float | None) -> str:
    """``when`` in the page's time zone (the ``zone`` every page is rendered with)."""
    return when(timestamp, context.get("zone") or dt.timezone.utc)


@pass_context
def local(context: Context, text: str | Mapping[str, str]) -> str:
    """An application's title: a string, or one per language (English, else any, if the
    page's language has none)."""
    if isinstance(text, str):
        return text
    found: Any = text.get(context.get("lang") or "en") or text.get("en") or next(
        iter(text.values()), "")
    return str(found)


def age(seconds: float | None) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``9s``: the two largest units are enough to judge."""
    if seconds is None:
        return "—"
    left = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


def segment(value: str) -> str:
    """One path segment of a URL: every reserved character escaped, ``/`` included, so an id
    holding ``/``, ``?``, ``#`` or ``%`` is one segment that routes back to itself."""
    return quote(str(value), safe="")


def environment() -> Environment:
    """Autoescape is on for every template, whatever its name: stored strings are text."""
    env = Environment(loader=PackageLoader("ichido.dashboard", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters.update(when=when_here, age=age, local=local, redact=redact, segment=segment)
    return env


async def read_form(request: Request) -> dict[str, str] | None:
    """A urlencoded form, bounded in size (no multipart here: nothing is uploaded)."""
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
