"""A refund asked of the shop (``POST /orders/{id}/refund``), committed with its Stripe call.

The request and its ``stripe_refund`` outbox row are written in one transaction, so a crash
leaves both or neither; the call follows (``send``) with an idempotency key derived from the
request, so a resend makes no second Refund. The Refund Stripe answers (and every later
snapshot of it) is applied by ``refunds``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import stripe

from ichido import Transaction
from ichido.db import Database
from ichido.outbox import enqueue
from ichido.shop import orders, refunds
from ichido.shop.order_request import OrderError


def record(tx: Transaction, order_id: str, amount: int | None,
           key: str | None) -> dict[str, Any]:
    """The request (idempotent by ``key``): ``amount`` None refunds what is left."""
    orders.lock(tx, order_id)
    order = orders.load(tx, order_id)
    if order is None:
        raise OrderError(f"no order {order_id}", code="unknown_order", status=404)
    if key is not None:
        found = tx.execute("SELECT id, amount FROM shop_refund_requests WHERE order_id = ?"
                           " AND idempotency_key = ?", (order_id, key)).fetchone()
        if found and amount is not None and amount != found[1]:
            raise OrderError("this Idempotency-Key was used with another amount",
                             code="idempotency_key_reused", status=409)
        if found:
            return {"id": found[0], "order": order_id, "amount": int(found[1])}
    if order["status"] not in ("paid", "partially_refunded"):
        raise OrderError(f"order {order_id} is {order['status']}, not refundable",
                         code="not_refundable", status=409)
    # Requests whose refund failed or was canceled at Stripe no longer count.
    requested = int(tx.execute(
        "SELECT COALESCE(SUM(q.amount), 0) FROM shop_refund_requests q"
        " LEFT JOIN shop_refunds r ON r.id = q.refund_id WHERE q.order_id = ?"
        " AND (r.status IS NULL OR r.status NOT IN ('failed', 'canceled'))",
        (order_id,)).fetchone()[0])
    remaining = int(order["amount"]) - requested
    amount = remaining if amount is None else amount
    if not 1 <= amount <= remaining:
        raise OrderError(f"refund must be ¥1 to ¥{remaining:,}", code="invalid_amount",
                         remaining=remaining)
    request_id = f"rrq_{secrets.token_hex(10)}"
    tx.execute("INSERT INTO shop_refund_requests (id, order_id, amount, idempotency_key,"
               " created_at) VALUES (?, ?, ?, ?, ?)",
               (request_id, order_id, amount, key, time.time()))
    enqueue(tx, "stripe_refund", f"ichido-refund-{request_id}",
            {"order_id": order_id, "request_id": request_id, "amount": amount,
             "payment_intent": order["payment_intent"]})
    return {"id": request_id, "order": order_id, "amount": amount}


def send(client: stripe.StripeClient, database: Database, key: str,
         payload: dict[str, Any]) -> None:
    """Outbox sender: the key is Stripe's idempotency key, so a resend makes no new refund."""
    refund = client.v1.refunds.create(
        params={"payment_intent": payload["payment_intent"], "amount": payload["amount"],
                "metadata": {"order_id": payload["order_id"],
                             "refund_request": payload["request_id"]}},
        options={"idempotency_key": key})
    with database.transaction() as tx:
        tx.execute("UPDATE shop_refund_requests SET refund_id = ? WHERE id = ?",
                   (refund.id, payload["request_id"]))
        refunds.apply_refund(tx, refund.to_dict())
