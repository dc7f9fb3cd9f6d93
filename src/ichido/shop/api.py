"""The orders API, JSON over HTTP on the same app as the receiver."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ichido.errors import IchidoError
from ichido.shop import order_view, subscribe
from ichido.shop.order_request import OrderError, OrderRequest
from ichido.shop.service import Shop


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(exc: IchidoError) -> Response:
    # ichido's errors carry no HTTP status (its receiver maps codes); the shop's own do
    status = getattr(exc, "http_status", 404 if exc.code.startswith("unknown_") else 400)
    return _Json(exc.to_json(), status_code=status)


async def _body(request: Request, limit: int) -> Any:
    """The JSON body, refused with 413 as soon as it passes ``limit`` (declared or streamed):
    this endpoint faces the internet, and an order is a handful of fields."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    try:
        return orjson.loads(bytes(body) or b"{}")
    except orjson.JSONDecodeError:
        raise OrderError("the body is not valid JSON", code="malformed_json", status=400) from None


def _too_large(limit: int) -> OrderError:
    return OrderError(f"the body exceeds the {limit}-byte limit", code="too_large", status=413,
                      limit=limit)


def routes(shop: Shop) -> list[Route]:
    limit = shop.settings.order_max_body_bytes

    async def place(request: Request) -> Response:
        try:
            order_request = OrderRequest.parse(await _body(request, limit))
            status, order = await run_in_threadpool(
                shop.place_order, order_request, request.headers.get("idempotency-key"))
        except IchidoError as exc:
            return _error(exc)
        return _Json(order, status_code=201 if status == 200 else status)

    async def show(request: Request) -> Response:
        order = await run_in_threadpool(_load, shop, request.path_params["order_id"])
        if order is None:
            return _error(OrderError("no such order", code="unknown_order", status=404))
        return _Json(order)

    async def refund(request: Request) -> Response:
        try:
            body = await _body(request, limit)
            amount = body.get("amount") if isinstance(body, dict) else None
            if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
                raise OrderError("amount must be whole yen", code="invalid_amount")
            accepted = await run_in_threadpool(shop.request_refund, request.path_params["order_id"],
                                               amount, request.headers.get("idempotency-key"))
        except IchidoError as exc:
            return _error(exc)
        return _Json({"refund_request": accepted,
                      "order": await run_in_threadpool(_load, shop, accepted["order"])},
                     status_code=202)

    async def place_checkout(request: Request) -> Response:
        try:
            checkout_request = OrderRequest.parse_checkout(await _body(request, limit))
            order = await run_in_threadpool(shop.place_checkout, checkout_request,
                                            request.headers.get("idempotency-key"))
        except IchidoError as exc:
            return _error(exc)
        return _Json(order, status_code=201)

    async def place_subscription(request: Request) -> Response:
        try:
            wanted = subscribe.SubscriptionRequest.parse(await _body(request, limit))
            made = await run_in_threadpool(subscribe.subscribe, shop, wanted,
                                           request.headers.get("idempotency-key"))
        except IchidoError as exc:
            return _error(exc)
        return _Json(made, status_code=201)

    async def show_subscription(request: Request) -> Response:
        found = await run_in_threadpool(subscribe.show, shop, request.path_params["sub_id"])
        if found is None:
            return _error(OrderError("no such subscription", code="unknown_subscription",
                                     status=404))
        return _Json(found)

    async def renew(request: Request) -> Response:
        try:
            order = await run_in_threadpool(shop.renew_voucher, request.path_params["order_id"])
        except IchidoError as exc:
            return _error(exc)
        return _Json(order)

    return [
        Route("/orders", place, methods=["POST"]),
        Route("/checkout", place_checkout, methods=["POST"]),
        Route("/subscriptions", place_subscription, methods=["POST"]),
        Route("/subscriptions/{sub_id}", show_subscription, methods=["GET"]),
        Route("/orders/{order_id}/voucher", renew, methods=["POST"]),
        Route("/orders/{order_id}", show, methods=["GET"]),
        Route("/orders/{order_id}/refund", refund, methods=["POST"]),
    ]


def _load(shop: Shop, order_id: str) -> dict[str, Any] | None:
    with shop.app.database.reading() as tx:
        return order_view.to_json(tx, order_id)
