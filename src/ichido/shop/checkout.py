"""Stripe Checkout (payment mode) for card and konbini: the session's events beside the
PaymentIntent's, on the same state machine (``orders.move``), so an order is fulfilled once
whichever comes first.

- ``checkout.session.completed`` with ``payment_status: "paid"`` (a card): paid;
  ``"unpaid"`` (a konbini voucher was issued): awaiting payment, nothing is fulfilled yet;
- ``checkout.session.async_payment_succeeded``: paid (the voucher was paid at the store);
- ``checkout.session.async_payment_failed``: expired (the voucher lapsed);
- ``checkout.session.expired``: canceled (the buyer never finished), the stock comes back.

A declined card or a lapsed voucher on the PaymentIntent alone moves nothing: on the hosted
page the buyer may try again, and the session says when they can no longer.

How the buyer paid is never guessed from the session ("paid at once, so a card"): the order
learns it from what Stripe names (``orders.learn_method``): the charge's
``payment_method_details.type``, a konbini voucher on the PaymentIntent, or a PaymentIntent
that allows one type only.
"""

from __future__ import annotations

import time
from typing import Any

from ichido import Transaction
from ichido.shop import orders

EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded",
          "checkout.session.async_payment_failed", "checkout.session.expired")


def target_of(event_type: str, session: dict[str, Any]) -> str | None:
    if event_type == "checkout.session.completed":
        return "paid" if session.get("payment_status") == "paid" else "awaiting_payment"
    return {"checkout.session.async_payment_succeeded": "paid",
            "checkout.session.async_payment_failed": "expired",
            "checkout.session.expired": "canceled"}.get(event_type)


def apply_session(tx: Transaction, event_type: str, session: dict[str, Any]) -> str | None:
    """Apply one Checkout Session event's snapshot; the new status, or None."""
    order_id = (session.get("metadata") or {}).get("order_id") or session.get(
        "client_reference_id")
    order = orders.load(tx, order_id) if order_id else None
    if order is None:
        return None  # a session made elsewhere on the account
    orders.lock(tx, order["id"])
    order = orders.load(tx, order["id"]) or order
    if session.get("payment_intent"):
        tx.execute("UPDATE shop_orders SET payment_intent = ? WHERE id = ?"
                   " AND payment_intent IS NULL", (session["payment_intent"], order["id"]))
    target = target_of(event_type, session)
    if target is None:
        return None
    failure = {"expired": "the konbini voucher was not paid in time",
               "canceled": "the Checkout Session expired unfinished"}.get(target)
    return orders.move(tx, order, target, time.time(), error=failure)


def session_params(order: dict[str, Any], methods: list[str], *, expires_after_days: int,
                   return_url: str) -> dict[str, Any]:
    """``checkout.sessions.create`` for one order: the line, the methods the fee guard left,
    and our order id on the session and on the PaymentIntent it makes."""
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [{"quantity": order["quantity"], "price_data": {
            "currency": "jpy", "unit_amount": order["amount"] // order["quantity"],
            "product_data": {"name": order["product_name"]}}}],
        "allowed_payment_method_types": methods,  # endive refuses ``payment_method_types``
        "customer_email": order["email"],
        "client_reference_id": order["id"],
        "metadata": {"order_id": order["id"]},
        "payment_intent_data": {"metadata": {"order_id": order["id"],
                                             "product": order["product_id"]}},
        "locale": order["locale"],
        "success_url": f"{return_url}?order={order['id']}&checkout=success",
        "cancel_url": f"{return_url}?order={order['id']}&checkout=cancel",
    }
    if "konbini" in methods:
        params["payment_method_options"] = {"konbini": {"expires_after_days": expires_after_days}}
    return params
