"""The ``/v2/`` face of the emulator: JSON bodies, Stripe's v2 error shape, v2 routes.

Stripe's v2 API differs from v1 on the wire (stripe-python's ``_api_requestor``): a POST body is
JSON, not a form (queries stay form-encoded: ``types[0]=…``, ``created[gt]=…``); every POST and
DELETE carries an ``Idempotency-Key``; an error is ``{"error": {"type", "code", "message"}}``
(``v2.error``: ``code`` and ``message`` required), ``code: "not_found"`` with a 404 for a missing
object. Auth, ``Request-Id``, the 429 control and idempotency keys are the v1 layer's.
Served: ``/v2/core/events`` (list, retrieve) and ``/v2/core/event_destinations`` (create, list,
retrieve, update, delete, disable, enable, ping).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ichido.emulator import forms, v2_lists, versions
from ichido.emulator.errors import StripeError, invalid
from ichido.emulator.event_destinations import EventDestinations
from ichido.emulator.state import REQUEST
from ichido.emulator.thin_events import ThinEvents

if TYPE_CHECKING:
    from ichido.emulator.emulator import Emulator

log = logging.getLogger("ichido.emulator")
Handler = Callable[..., dict[str, Any]]
MAX_TYPES = 20  # "An array of up to 20 strings containing specific event names."
BOUNDS = ("gt", "gte", "lt", "lte")
CODES = {400: "invalid_request", 401: "unauthenticated", 404: "not_found",
         409: "idempotency_error", 429: "rate_limit", 500: "internal_error"}


def routes(thin: ThinEvents, destinations: EventDestinations
           ) -> list[tuple[str, re.Pattern[str], Handler]]:
    d, path = destinations, "/v2/core/event_destinations"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/v2/core/events", lambda params: list_events(thin, params)),
        ("GET", "/v2/core/events/{id}", lambda i, params: retrieve_event(thin, i, params)),
        ("POST", path, d.create),
        ("GET", path, d.list),
        ("GET", path + "/{id}", d.retrieve),
        ("POST", path + "/{id}", d.update),
        ("DELETE", path + "/{id}", d.delete),
        ("POST", path + "/{id}/disable", d.switch(False)),
        ("POST", path + "/{id}/enable", d.switch(True)),
        ("POST", path + "/{id}/ping", d.ping),
    ]
    return [(method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), h)
            for method, p, h in table]


def retrieve_event(thin: ThinEvents, event_id: str, params: dict[str, Any]) -> dict[str, Any]:
    forms.check_known(params, set())
    event = thin.get(event_id)
    if event is None:
        raise StripeError(404, "invalid_request_error",
                          f"No such event: '{event_id[:80]}'", code="not_found")
    return event


def list_events(thin: ThinEvents, params: dict[str, Any]) -> dict[str, Any]:
    """``GET /v2/core/events``: 30 days back, newest first; ``types`` (≤ 20), ``object_id``
    (the related object), ``created[gt|gte|lt|lte]`` (RFC 3339), ``limit``, ``page``."""
    listed, _ = v2_lists.opened(params)
    forms.check_known(listed, {"types", "object_id", "created", "limit"})
    types = listed.get("types")
    if types is not None:
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise invalid("types must be a list of event types.", param="types",
                          code="parameter_invalid")
        if len(types) > MAX_TYPES:
            raise invalid(f"types takes up to {MAX_TYPES} event types.", param="types",
                          code="parameter_invalid")
    object_id = listed.get("object_id")
    bounds = _created(listed.get("created"))
    events = [e for e in thin.live()
              if (types is None or e["type"] in types)
              and (object_id is None or (e.get("related_object") or {}).get("id") == object_id)
              and all(_holds(thin.millis[e["id"]], op, at) for op, at in bounds)]
    order = {event_id: n for n, event_id in enumerate(thin.events)}  # oldest: 0
    return v2_lists.page(events, params, "/v2/core/events", lambda e: (order[e["id"]],))


def _created(value: Any) -> list[tuple[str, int]]:
    if value is None:
        return []
    if not isinstance(value, dict) or set(value) - set(BOUNDS):
        raise invalid("created takes gt, gte, lt and lte.", param="created",
                      code="parameter_invalid")
    out = []
    for op, raw in value.items():
        try:
            at = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise invalid(f"created[{op}] must be an RFC 3339 timestamp "
                          "(2026-10-01T10:00:00.000Z).", param=f"created[{op}]",
                          code="parameter_invalid") from None
        if at.tzinfo is None:
            raise invalid(f"created[{op}] needs a time zone (Z).", param=f"created[{op}]",
                          code="parameter_invalid")
        out.append((op, int(at.timestamp() * 1000)))
    return out


def _holds(millis: int, op: str, at: int) -> bool:
    return {"gt": millis > at, "gte": millis >= at, "lt": millis < at, "lte": millis <= at}[op]


def error_body(error: StripeError) -> bytes:
    """``v2.error``: ``type``, ``code`` (always: the spec requires it) and ``message``."""
    code = error.code or (error.type if error.type == "idempotency_error" else None) \
        or CODES.get(error.status, "invalid_request")
    kind = "rate_limit" if error.status == 429 else error.type
    return orjson.dumps({"error": {"type": kind, "code": code, "message": error.message}},
                        option=orjson.OPT_INDENT_2)


class V2Api:
    """Serves ``/v2/…`` for ``app.Api``, with its key check."""

    def __init__(self, emu: "Emulator") -> None:
        self.emu = emu
        self.table = routes(emu.thin, emu.destinations)

    async def handle(self, request: Request, request_id: str, headers: dict[str, str],
                     authenticate: Callable[[Request], None]) -> Response:
        method, path = request.method, request.url.path
        try:
            authenticate(request)
            headers["Stripe-Version"] = versions.parse(request.headers.get("Stripe-Version"),
                                                       self.emu.store.api_version).name
            handler, path_params = self._match(method, path)
            if self.emu.take_rate_limit():
                raise StripeError(429, "rate_limit", "Too many requests hit the API too "
                                  "quickly. We recommend an exponential backoff of your "
                                  "requests.")
            params = await _params(request)
            key = request.headers.get("Idempotency-Key") if method in ("POST", "DELETE") \
                else None
            if key is None:
                status, content, _ = self._run(handler, path_params, params, request_id, None)
                return _json(status, content, headers)
            headers["Idempotency-Key"] = key
            fingerprint = self.emu.keys.fingerprint(method, path, params)
            saved = self.emu.keys.begin(key, fingerprint)
            if saved is not None:
                return _json(saved.status, saved.body, headers | {
                    "Idempotent-Replayed": "true", "Original-Request": saved.request_id})
            status, content, keep = 500, b"", False
            try:
                status, content, keep = self._run(handler, path_params, params, request_id,
                                                  key)
            finally:
                self.emu.keys.finish(key, fingerprint, status, content, request_id, keep)
            return _json(status, content, headers)
        except StripeError as error:
            status = 409 if error.type == "idempotency_error" else error.status
            return _json(status, error_body(error), headers)

    def _match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        for verb, pattern, handler in self.table:
            found = pattern.match(path)
            if found and verb == method:
                return handler, found.groupdict()
        raise StripeError(404, "invalid_request_error",
                          f"Unrecognized request URL ({method}: {path[:200]}).",
                          code="not_found")

    def _run(self, handler: Handler, path_params: dict[str, str], params: dict[str, Any],
             request_id: str, key: str | None) -> tuple[int, bytes, bool]:
        store = self.emu.store
        with store.lock:
            store.fire_due()
            token = REQUEST.set({"id": request_id, "idempotency_key": key})
            store.begin()
            try:
                result = handler(*path_params.values(), params)
                content = orjson.dumps(result, option=orjson.OPT_INDENT_2)
            except StripeError as error:
                store.undo() if error.undo else store.commit()
                return error.status, error_body(error), error.saved
            except Exception:  # an emulator bug: undo, answer Stripe's 500 shape, log
                store.undo()
                log.exception("emulator request %s failed", request_id)
                return 500, error_body(StripeError(500, "api_error", "An unknown error "
                                                   "occurred in the emulator.")), True
            finally:
                REQUEST.reset(token)
            store.commit()
        return 200, content, True


async def _params(request: Request) -> dict[str, Any]:
    if request.method != "POST":
        return forms.parse(request.url.query)
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("The request body is not valid JSON (v2 requests send JSON).",
                      code="invalid_json") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", code="invalid_json")
    return body


def _json(status: int, content: bytes, headers: dict[str, str]) -> Response:
    return Response(content, status_code=status, headers=headers,
                    media_type="application/json")
