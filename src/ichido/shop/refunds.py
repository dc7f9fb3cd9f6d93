"""Refunds as Stripe reports them: each Refund only moves forward, and the order's refund
state is derived from all of them (``orders.settle_refunds``)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from ichido import Transaction
from ichido.outbox import enqueue
from ichido.shop import access, foreign, notices, orders
from ichido.shop.subscriptions import DEFAULT_GRACE, DEFAULT_PARENT_WAIT

REFUND_RANK = {"pending": 0, "requires_action": 1, "succeeded": 2, "failed": 2, "canceled": 2}


def apply_refund(tx: Transaction, refund: dict[str, Any], *, grace: float = DEFAULT_GRACE,
                 now: float | None = None, wait: float = DEFAULT_PARENT_WAIT) -> str | None:
    """Record a Refund snapshot (forward only) and settle the order's refund state, or the
    access of the subscription whose invoice it refunds. A refund of a payment the shop never
    made raises ``NotOurs``; one whose payment the shop may still be learning of raises
    ``ParentPending`` (``foreign``; ``wait``: how far back that payment may have begun)."""
    payment_intent = foreign.id_of(refund.get("payment_intent"))
    if payment_intent is None:  # a pre-PaymentIntent charge's: never the shop's
        raise foreign.NotOurs("no_payment_intent")
    row = tx.execute("SELECT id FROM shop_orders WHERE payment_intent = ?",
                     (payment_intent,)).fetchone()
    if row is None and (sub_id := access.record_refund(tx, refund)) is not None:
        access.settle(tx, sub_id, time.time() if now is None else now, grace)
        return refund.get("status")
    if row is None:
        reason = f"unknown_payment:{foreign.shown_id(payment_intent)}"
        if foreign.pending_payment(tx, (refund.get("created") or 0) - wait):
            # The refund may come before we know its payment: retry, never drop (I4).
            raise foreign.ParentPending(f"refund {foreign.shown_id(refund.get('id'))}: payment"
                                        f" {foreign.shown_id(payment_intent)} is not known yet",
                                        reason)
        raise foreign.NotOurs(reason)
    order_id = row[0]
    orders.lock(tx, order_id)
    status = refund.get("status") or "pending"
    next_action = orjson.dumps(refund["next_action"]).decode() if refund.get("next_action") else None
    current = tx.execute("SELECT status FROM shop_refunds WHERE id = ?", (refund["id"],)).fetchone()
    now = time.time()
    if current is None:
        tx.execute("INSERT INTO shop_refunds (id, order_id, amount, status, next_action, created,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                   (refund["id"], order_id, refund["amount"], status, next_action,
                    refund.get("created") or int(now), now))
        mail_refund(tx, order_id, refund)
    elif REFUND_RANK.get(status, 0) > REFUND_RANK.get(current[0], 0):
        tx.execute("UPDATE shop_refunds SET status = ?, next_action = ?, updated_at = ?"
                   " WHERE id = ?", (status, next_action, now, refund["id"]))
    else:
        return None
    orders.settle_refunds(tx, order_id, now)
    return status


def mail_refund(tx: Transaction, order_id: str, refund: dict[str, Any]) -> None:
    """Tell the buyer, once per refund, the first time the shop hears of it: a konbini buyer
    must give Stripe a bank account before any money can move. Numbered per order
    (``refund-1``, ``refund-2``) under the order's lock."""
    if refund.get("status") in ("failed", "canceled"):
        return
    order = orders.load(tx, order_id)
    assert order is not None
    number = 1 + int(tx.execute("SELECT count(*) FROM shop_refunds WHERE order_id = ?"
                                " AND mail_number IS NOT NULL", (order_id,)).fetchone()[0])
    tx.execute("UPDATE shop_refunds SET mail_number = ? WHERE id = ?", (number, refund["id"]))
    enqueue(tx, "mail", f"mail:{order_id}:refund-{number}", notices.refund(order, refund))
