"""The orders API, JSON over HTTP on the same app as the receiver."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ichido.domain import orders
from ichido.errors import IchidoError

if TYPE_CHECKING:
    from ichido.domain.shop import Shop


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(exc: IchidoError) -> Response:
    return _Json(exc.to_json(), status_code=exc.http_status)


async def _body(request: Request) -> Any:
    from ichido.domain.shop import OrderError

    try:
        return orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise OrderError("the body is not valid JSON", code="malformed_json", status=400) from None


def routes(shop: "Shop") -> list[Route]:
    from ichido.domain.shop import OrderError, OrderRequest

    async def place(request: Request) -> Response:
        try:
            order_request = OrderRequest.parse(await _body(request))
            status, order = await run_in_threadpool(
                shop.place_order, order_request, request.headers.get("idempotency-key"))
        except IchidoError as exc:
            return _error(exc)
        return _Json(order, status_code=201 if status == 200 else status)

    async def show(request: Request) -> Response:
        order = await run_in_threadpool(_load, shop, request.path_params["order_id"])
        if order is None:
            return _Json({"error": {"code": "unknown_order", "message": "no such order"}},
                         status_code=404)
        return _Json(order)

    async def refund(request: Request) -> Response:
        try:
            body = await _body(request)
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

    return [
        Route("/orders", place, methods=["POST"]),
        Route("/orders/{order_id}", show, methods=["GET"]),
        Route("/orders/{order_id}/refund", refund, methods=["POST"]),
    ]


def _load(shop: "Shop", order_id: str) -> dict[str, Any] | None:
    with shop.app.database.reading() as tx:
        return orders.to_json(tx, order_id)
