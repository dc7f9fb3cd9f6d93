"""The HTTP face of the emulator: Stripe's routes, auth, errors, ``Request-Id``, idempotency.

Every answer carries ``Request-Id: req_…`` (docs.stripe.com/api/request_ids) and JSON shaped as
Stripe's; errors are ``{"error": {...}}`` with Stripe's status codes. Auth is Stripe's:
``Authorization: Bearer sk_test_…`` (or HTTP Basic with the key as user name, as curl ``-u``
sends it); anything else is a 401. Controls outside Stripe's API live under ``/_emulator/``
and need the same key; the hosted voucher page needs none, like Stripe's.
A replayed idempotent answer also carries ``Original-Request: <first request id>``, as Stripe's
do (seen in Stripe's responses; not in its docs).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ichido.emulator import endpoints, forms, konbini, reading
from ichido.emulator.emulator import Emulator
from ichido.emulator.errors import StripeError, invalid, no_such, unauthenticated
from ichido.emulator.idempotency import IdempotencyKeys
from ichido.emulator.objects import API_VERSION, new_id
from ichido.emulator.state import REQUEST

log = logging.getLogger("ichido.emulator")
TICK_SECONDS = 0.1
MAX_ADVANCE = 100 * 365 * 86400
NO_KEY = ("You did not provide an API key. You need to provide your API key in the "
          "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
          "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we "
          "can help at https://support.stripe.com/.")


@dataclass(frozen=True)
class ApiRoute:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., dict[str, Any]]
    records: bool  # events it causes carry its request id (controls act as the buyer: no)


def routes(emu: Emulator) -> list[ApiRoute]:
    s, pay, ref = emu.store, emu.payments, emu.refunds
    table: list[tuple[str, str, Callable[..., dict[str, Any]]]] = [
        ("POST", "/v1/payment_intents", pay.create),
        ("GET", "/v1/payment_intents", reading.listing(s, "payment_intent",
                                                       "/v1/payment_intents")),
        ("GET", "/v1/payment_intents/{id}", pay.retrieve),
        ("POST", "/v1/payment_intents/{id}/confirm", pay.confirm),
        ("POST", "/v1/payment_intents/{id}/cancel", pay.cancel),
        ("GET", "/v1/charges", reading.listing(s, "charge", "/v1/charges", "payment_intent")),
        ("GET", "/v1/charges/{id}", reading.retrieve(s, "charge", "charge")),
        ("GET", "/v1/balance_transactions", reading.listing(
            s, "balance_transaction", "/v1/balance_transactions", "source", "type")),
        ("GET", "/v1/balance_transactions/{id}", reading.retrieve(
            s, "balance_transaction", "balance_transaction")),
        ("GET", "/v1/payment_methods/{id}", reading.retrieve(s, "payment_method",
                                                             "payment_method")),
        ("POST", "/v1/refunds", ref.create),
        ("GET", "/v1/refunds", reading.listing(s, "refund", "/v1/refunds", "charge",
                                               "payment_intent")),
        ("GET", "/v1/refunds/{id}", ref.retrieve),
        ("POST", "/v1/refunds/{id}/cancel", ref.cancel),
        ("POST", "/v1/test_helpers/refunds/{id}/expire", ref.expire),
        ("GET", "/v1/events", lambda params: reading.list_events(s, params)),
        ("GET", "/v1/events/{id}", reading.retrieve(s, "event", "id")),
    ]
    controls: list[tuple[str, str, Callable[..., dict[str, Any]]]] = [
        ("POST", "/_emulator/payment_intents/{id}/pay", pay.pay),
        ("POST", "/_emulator/payment_intents/{id}/expire", pay.expire),
        ("POST", "/_emulator/refunds/{id}/bank_details", ref.bank_details),
        ("POST", "/_emulator/clock/advance", lambda params: _advance(emu, params)),
        ("GET", "/_emulator/webhook_endpoints", lambda params: {
            "object": "list", "data": emu.webhook_endpoints(), "has_more": False,
            "url": "/_emulator/webhook_endpoints"}),
        *[("POST", f"/_emulator/webhook_endpoints/{{id}}/{action}", _switch(emu, **change))
          for action, change in SWITCHES.items()],
        ("GET", "/_emulator/stats", lambda params: {"object": "emulator.stats",
                                                    **emu.stats()}),
    ]
    return [ApiRoute(method, _compile(path), handler, records=path.startswith("/v1/"))
            for method, path, handler in table + controls]


def _compile(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")


SWITCHES: dict[str, dict[str, bool]] = {
    "disable": {"enabled": False}, "enable": {"enabled": True},
    "down": {"reachable": False}, "up": {"reachable": True}}


def _switch(emu: Emulator, **change: bool) -> Callable[..., dict[str, Any]]:
    def handler(endpoint_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, set())
        try:
            return emu.endpoint(endpoint_id, **change)
        except endpoints.EndpointNotFound:
            raise no_such("webhook_endpoint", endpoint_id) from None
    return handler


def _advance(emu: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    seconds = forms.integer(params, "seconds", required=True)
    assert seconds is not None
    if not 0 <= seconds <= MAX_ADVANCE:
        raise invalid(f"seconds must be from 0 (the clock only moves forward) to {MAX_ADVANCE}"
                      " (a century)", param="seconds")
    fired = emu.advance(seconds)
    return {"object": "emulator.clock", "now": emu.now(), "fired": fired}


class Api:
    """The ASGI app's one request handler, plus the ticker that fires due transitions."""

    def __init__(self, emu: Emulator) -> None:
        self.emu, self.endpoints = emu, routes(emu)

    async def handle(self, request: Request) -> Response:
        request_id = new_id("req", 14)
        headers = {"Request-Id": request_id,
                   "Stripe-Version": request.headers.get("Stripe-Version", API_VERSION)}
        path, method = request.url.path, request.method
        if method == "GET" and path.startswith("/_emulator/vouchers/"):
            return self._voucher(path.rsplit("/", 1)[-1])
        try:
            self._authenticate(request)
            endpoint, path_params = self._match(method, path)
            body = forms.decode(await request.body()) if method == "POST" else ""
            params = forms.parse(body or request.url.query)
            key = request.headers.get("Idempotency-Key") if method == "POST" else None
            if key is None:
                status, content, _ = await self._run(endpoint, params, path_params,
                                                     request_id, None)
                return _json(status, content, headers)
            headers["Idempotency-Key"] = key
            fingerprint = IdempotencyKeys.fingerprint(method, path, params)
            saved = self.emu.keys.begin(key, fingerprint)
            if saved is not None:
                return _json(saved.status, saved.body, headers | {
                    "Idempotent-Replayed": "true", "Original-Request": saved.request_id})
            status, content, keep = 500, b"", False
            try:
                status, content, keep = await self._run(endpoint, params, path_params,
                                                        request_id, key)
            finally:
                self.emu.keys.finish(key, fingerprint, status, content, request_id, keep)
            return _json(status, content, headers)
        except StripeError as error:
            return _json(error.status, _dumps(error.body(request_id)), headers)
        except Exception:  # never a text/plain 500: Stripe's error shape, always
            log.exception("emulator request %s failed", request_id)
            return _json(500, _dumps(_internal_error().body(request_id)), headers)

    async def _run(self, endpoint: ApiRoute, params: dict[str, Any], path_params: dict[str, str],
                   request_id: str, key: str | None) -> tuple[int, bytes, bool]:
        """Execute one request; the third value says whether an idempotency key keeps it."""
        if self.emu.api_delay:
            await asyncio.sleep(self.emu.api_delay)
        store = self.emu.store
        with store.lock:
            store.fire_due()  # outside the journal: due work belongs to no request
            token = REQUEST.set({"id": request_id, "idempotency_key": key}) \
                if endpoint.records else None
            store.begin()
            try:
                result = endpoint.handler(*path_params.values(), params)
                content = _dumps(store.expand(result, forms.strings(params, "expand")))
            except StripeError as error:
                # A refusal stores nothing; a result (a 402 decline) keeps what it did.
                store.commit() if error.saved else store.undo()
                return error.status, _dumps(error.body(request_id)), error.saved
            except Exception:  # an emulator bug: undo, answer as Stripe does to a 500, log
                store.undo()
                log.exception("emulator request %s failed", request_id)
                return 500, _dumps(_internal_error().body(request_id)), True
            finally:
                if token is not None:
                    REQUEST.reset(token)
            store.commit()
        return 200, content, True

    def _match(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]]:
        for endpoint in self.endpoints:
            found = endpoint.pattern.match(path)
            if found and endpoint.method == method:
                return endpoint, found.groupdict()
        raise invalid(f"Unrecognized request URL ({method}: {path}). Please see "
                      "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                      status=404)

    def _authenticate(self, request: Request) -> None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        key = value.strip()
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(key).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        elif scheme.lower() != "bearer":
            key = ""
        if not key:
            raise unauthenticated(NO_KEY)
        wanted = self.emu.api_key
        if not key.startswith("sk_test_") or (wanted is not None and key != wanted):
            raise unauthenticated(f"Invalid API Key provided: {key[:8]}****{key[-4:]}")

    def _voucher(self, token: str) -> Response:
        with self.emu.store.lock:
            pi_id = self.emu.store.vouchers.get(token)
            pi = self.emu.store.objects["payment_intent"].get(pi_id or "")
            page = konbini.voucher_page(pi) if pi else None
        return HTMLResponse(page or "<h1>No such voucher</h1>", status_code=200 if page else 404)

    async def tick(self) -> None:
        """Fire due transitions in real time too, not only when a request or a test comes."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            with self.emu.store.lock:
                self.emu.store.fire_due()


def _internal_error() -> StripeError:
    return StripeError(500, "api_error", "An unknown error occurred in the emulator.")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


def _json(status: int, content: bytes, headers: dict[str, str]) -> Response:
    return Response(content, status_code=status, headers=headers,
                    media_type="application/json")


def build_app(emu: Emulator) -> Starlette:
    api = Api(emu)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await emu.sender.start()
        ticker = asyncio.ensure_future(api.tick())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await emu.sender.stop()

    methods = ["GET", "POST", "DELETE", "PUT", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", api.handle, methods=methods)],
                     lifespan=lifespan)
