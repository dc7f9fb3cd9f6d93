"""Orders left in ``created`` by a client that never came back (Stripe never answered, and the
client never retried with its key) hold stock that nobody will pay for. After
``ShopSettings.unpaid_order_ttl_seconds`` they are ``abandoned`` and give it back.

Exactly once: the conditional update (``WHERE status = 'created'``) is the check itself, so two
reapers, or a reaper and a late payment, cannot both release. A payment that does come later
still counts (``abandoned`` ranks below ``paid``): the stock is taken back if it is still there,
else the parcel is ``needs_attention`` for a person (never below zero, see ``stock``). Checkout
orders are left alone: their session expires on its own (``checkout.session.expired``).

A PayPay order never authorised, or a bank-transfer order with nothing received, is released
after its ``hold_until`` (``ShopSettings.paypay_hold_seconds``, ``transfer_hold_seconds``): the
reaper queues the cancellation of its PaymentIntent at Stripe (the outbox, once per order), and
the canceled snapshot moves the order and gives the stock back, so a payment that beats the
cancellation wins. A bank transfer already partly paid is held for a person to decide (the
dashboard lists it with what is still owed): canceling it would send the money back to the
customer's cash balance, not to the buyer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ichido.outbox import enqueue
from ichido.shop import orders, stock
from ichido import poll

log = logging.getLogger("ichido.shop.reaper")
BATCH = 100


def abandon(tx: Any, order_id: str, cutoff: float, now: float) -> bool:
    orders.lock(tx, order_id)
    changed = tx.execute(
        "UPDATE shop_orders SET status = 'abandoned', updated_at = ?, failure = ?"
        " WHERE id = ? AND status = 'created' AND created_at < ? AND checkout_session IS NULL",
        (now, "never paid: released after the unpaid-order time", order_id, cutoff)).rowcount
    if changed:
        order = orders.load(tx, order_id)
        assert order is not None
        stock.release(tx, order)
    return bool(changed)


def release_held(store: Any, now: float) -> int:
    """Queue the cancellation of every waiting order past its hold; the count queued."""
    total = 0
    while True:
        with store.transaction() as tx:
            held = tx.execute(
                "SELECT id, payment_intent FROM shop_orders WHERE status = 'awaiting_payment'"
                " AND hold_until < ? AND payment_intent IS NOT NULL AND checkout_session IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM ichido_outbox WHERE ichido_outbox.key ="
                " 'ichido-cancel-' || shop_orders.id) LIMIT ?", (now, BATCH)).fetchall()
            for order_id, payment_intent in held:
                total += enqueue(tx, "stripe_cancel_payment", f"ichido-cancel-{order_id}",
                                 {"order_id": order_id, "payment_intent": payment_intent})
        if len(held) < BATCH:
            return total


def reap(store: Any, ttl: float, now: float | None = None) -> int:
    """Abandon every order ``created`` more than ``ttl`` seconds before ``now``, and release
    the waiting ones past their hold; the count."""
    now = time.time() if now is None else now
    cutoff = now - ttl
    total = release_held(store, now)
    while True:
        with store.reading() as tx:
            stale = [row[0] for row in tx.execute(
                "SELECT id FROM shop_orders WHERE status = 'created' AND created_at < ?"
                " AND checkout_session IS NULL ORDER BY created_at LIMIT ?",
                (cutoff, BATCH)).fetchall()]
        for order_id in stale:
            with store.transaction() as tx:
                total += abandon(tx, order_id, cutoff, now)
        if len(stale) < BATCH:
            return total


def run(store: Any, ttl: float, stop: threading.Event) -> None:
    """The background loop: a pass every tenth of the TTL (1 s to a minute apart)."""
    def one_pass() -> int:
        if reaped := reap(store, ttl):
            log.info("reaper: %d unpaid order(s) abandoned or released", reaped)
        return 0  # then sleep the interval, whatever was done

    poll("reaper", one_pass, stop, None, min(max(ttl / 10, 1.0), 60.0))
