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
from typing import Any, AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ichido.emulator import forms, konbini, shapes, versions
from ichido.emulator.emulator import Emulator
from ichido.emulator.errors import StripeError, invalid, unauthenticated
from ichido.emulator.idempotency import IdempotencyKeys
from ichido.emulator.objects import new_id
from ichido.emulator.routes import ApiRoute, routes
from ichido.emulator.state import REQUEST
from ichido.emulator.v2_http import V2Api

log = logging.getLogger("ichido.emulator")
TICK_SECONDS = 0.1
# docs.stripe.com/rate-limits: 429; since API 2015-09-08 without the old rate_limit code.
RATE_LIMITED = ("Too many requests hit the API too quickly. We recommend an exponential "
                "backoff of your requests.")
NO_KEY = ("You did not provide an API key. You need to provide your API key in the "
          "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
          "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we "
          "can help at https://support.stripe.com/.")


class Api:
    """The ASGI app's one request handler, plus the ticker that fires due transitions."""

    def __init__(self, emu: Emulator) -> None:
        self.emu, self.endpoints = emu, routes(emu)
        self.v2 = V2Api(emu)  # /v2/…: JSON bodies, v2 errors (thin events, destinations)

    async def handle(self, request: Request) -> Response:
        request_id = new_id("req", 14)
        headers = {"Request-Id": request_id}
        path, method = request.url.path, request.method
        if method == "GET" and path.startswith("/_emulator/vouchers/"):
            return self._voucher(path.rsplit("/", 1)[-1])
        if path.startswith(("/_emulator/checkout/", "/_emulator/hosted_invoices/")):
            return await self._hosted(request, request_id)
        if path.startswith("/_emulator/paypay/"):
            return await self._paypay(request, request_id)
        if method == "GET" and path.startswith("/_emulator/bank_transfer_instructions/"):
            with self.emu.store.lock:
                page = self.emu.bank_transfers.instructions_page(path.rsplit("/", 1)[-1])
            return HTMLResponse(page or "<h1>No transfer awaited</h1>",
                                status_code=200 if page else 404)
        if path.startswith("/v2/"):
            return await self.v2.handle(request, request_id, headers, self._authenticate)
        try:
            self._authenticate(request)
            version = versions.parse(request.headers.get("Stripe-Version"),
                                     self.emu.store.api_version)
            headers["Stripe-Version"] = version.name
            endpoint, path_params = self._match(method, path)
            if endpoint.records and self.emu.take_rate_limit():
                raise StripeError(429, "invalid_request_error", RATE_LIMITED)
            body = forms.decode(await request.body()) if method == "POST" else ""
            params = forms.parse(body or request.url.query)
            key = request.headers.get("Idempotency-Key") if method == "POST" else None
            if key is None:
                status, content, _ = await self._run(endpoint, params, path_params,
                                                     request_id, None, version)
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
                                                        request_id, key, version)
            finally:
                self.emu.keys.finish(key, fingerprint, status, content, request_id, keep)
            return _json(status, content, headers)
        except StripeError as error:
            return _json(error.status, _dumps(error.body(request_id)), headers)
        except Exception:  # never a text/plain 500: Stripe's error shape, always
            log.exception("emulator request %s failed", request_id)
            return _json(500, _dumps(_internal_error().body(request_id)), headers)

    async def _run(self, endpoint: ApiRoute, params: dict[str, Any], path_params: dict[str, str],
                   request_id: str, key: str | None,
                   version: versions.Version) -> tuple[int, bytes, bool]:
        """Execute one request in ``version``: its parameters checked against what that
        version takes, its answer rendered as that version shows it. The third value says
        whether an idempotency key keeps it."""
        if self.emu.api_delay:
            await asyncio.sleep(self.emu.api_delay)
        gate = self.emu.api_gate
        if gate is not None and not gate.is_set():  # a test holds requests mid-execution
            await asyncio.to_thread(gate.wait, 30)
        store = self.emu.store
        with store.lock:
            store.fire_due()  # outside the journal: due work belongs to no request
            token = REQUEST.set({"id": request_id, "idempotency_key": key}) \
                if endpoint.records else None
            serving = versions.serving(version)
            store.begin()
            try:
                versions.check(version, endpoint.key, params)
                expand = forms.expansions(params)
                result = endpoint.handler(*path_params.values(), params)
                content = _dumps(versions.render(store.expand(result, expand), version))
            except StripeError as error:
                # A refusal stores nothing; a result (a 402 decline) keeps what it did.
                store.undo() if error.undo else store.commit()
                error = _lacking(error, version, endpoint.key)
                body = versions.render(error.body(request_id), version)
                return error.status, _dumps(body), error.saved
            except Exception:  # an emulator bug: undo, answer as Stripe does to a 500, log
                store.undo()
                log.exception("emulator request %s failed", request_id)
                return 500, _dumps(_internal_error().body(request_id)), True
            finally:
                versions.done(serving)
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

    async def _hosted(self, request: Request, request_id: str) -> Response:
        """The buyer's pages, which need no key, as Stripe's hosted pages: Checkout (GET shows
        it, POST is the buyer's choice) and the hosted invoice (its konbini voucher link)."""
        object_id = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if request.url.path.startswith("/_emulator/hosted_invoices/"):
            with self.emu.store.lock:
                inv = self.emu.store.objects["invoice"].get(object_id)
                pi = self.emu.store.objects["payment_intent"].get(
                    (inv or {}).get("payment_intent") or "")
                page = hosted_invoice(inv, pi) if inv else None
            return HTMLResponse(page or "<h1>No such invoice</h1>",
                                status_code=200 if page else 404)
        if request.method == "POST":
            try:
                params = forms.parse(forms.decode(await request.body()))
            except StripeError as error:
                return _json(error.status, _dumps(error.body(request_id)), {})
            endpoint, _ = self._match("POST", f"/_emulator/checkout_sessions/{object_id}/complete")
            status, content, _ = await self._run(endpoint, params, {"id": object_id},
                                                 request_id, None,
                                                 versions.Version(self.emu.store.api_version))
            if status != 200:
                return _json(status, content, {"Request-Id": request_id})
            session = orjson.loads(content)
            if session["status"] == "complete" and session["success_url"] and \
                    session["payment_status"] == "paid":
                url = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
                return Response(status_code=303, headers={"Location": url})
        with self.emu.store.lock:
            page = self.emu.checkout.page(object_id)
            session = self.emu.store.objects["checkout.session"].get(object_id)
            pi = self.emu.store.objects["payment_intent"].get(
                (session or {}).get("payment_intent") or "")
        if page is not None and pi is not None and pi["status"] == "requires_action":
            page = konbini.voucher_page(pi)
        return HTMLResponse(page or "<h1>No such Checkout Session</h1>",
                            status_code=200 if page else 404)

    async def _paypay(self, request: Request, request_id: str) -> Response:
        """PayPay's test page (no key, as the buyer's browser has none): GET shows it, a form
        POST of ``result`` authorises or fails the payment and sends the buyer back."""
        token = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        with self.emu.store.lock:
            pi_id = self.emu.paypay.intent_of(token)
        if request.method == "POST" and pi_id is not None:
            try:
                params = forms.parse(forms.decode(await request.body()))
            except StripeError as error:
                return _json(error.status, _dumps(error.body(request_id)), {})
            endpoint, _ = self._match("POST", f"/_emulator/payment_intents/{pi_id}/authorize")
            status, content, _ = await self._run(endpoint, params, {"id": pi_id}, request_id,
                                                 None,
                                                 versions.Version(self.emu.store.api_version))
            if status != 200:
                return _json(status, content, {"Request-Id": request_id})
            with self.emu.store.lock:
                back = self.emu.paypay.back_to(token)
            if back:
                return Response(status_code=303, headers={"Location": back})
        with self.emu.store.lock:
            page = self.emu.paypay.page(token)
        return HTMLResponse(page or "<h1>No such PayPay payment</h1>",
                            status_code=200 if page else 404)

    async def tick(self) -> None:
        """Fire due transitions in real time too, not only when a request or a test comes."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            with self.emu.store.lock:
                self.emu.store.fire_due()


def hosted_invoice(inv: dict[str, Any], pi: dict[str, Any] | None) -> str:
    """What the customer sees for an invoice: the amount, the due date, the voucher."""
    voucher = ((pi or {}).get("next_action") or {}).get("konbini_display_details") or {}
    link = f"<p><a href={voucher['hosted_voucher_url']}>コンビニ払いの番号</a></p>" \
        if voucher else ""
    return (f"<!doctype html><meta charset=utf-8><title>{inv['number']}</title>"
            f"<h1>¥{inv['amount_due']:,}</h1><p>{inv['status']}</p>{link}")


def _internal_error() -> StripeError:
    return StripeError(500, "api_error", "An unknown error occurred in the emulator.")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


def _lacking(error: StripeError, version: versions.Version, route: str) -> StripeError:
    """A parameter the emulator's handler does not know, but Stripe's version does, is the
    emulator's gap, not the caller's mistake: say so, never ``parameter_unknown``."""
    if error.code != "parameter_unknown" or not error.param \
            or not versions.knows(version, route, error.param):
        return error
    return invalid(f"This local Stripe does not implement {error.param}, which Stripe API "
                   f"{version} accepts here.", param=error.param,
                   code="emulator_parameter_unsupported")


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
