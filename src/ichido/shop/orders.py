"""The order state machine. Every function takes the caller's transaction and is safe to run
twice with the same input: that, with the inbox's exactly-once processing, is what keeps a
duplicate or reordered event from doing anything twice.

Payment state moves only forward (I4 in docs/invariants.md), judged by Stripe's own object
status, never by arrival order:

    created → awaiting_payment → partially_paid → failed → expired | canceled | abandoned → paid

(``partially_paid``: a bank transfer that has received part of its amount.)

A late ``requires_action`` after ``succeeded`` ranks lower and changes nothing. Past ``paid``,
``partially_refunded`` and ``refunded`` are derived from the order's refunds (``refunds.py``).

One exception, decided here: a konbini order whose voucher expired may be confirmed again for
a new voucher (``Shop.renew_voucher``). Each voucher is a payment *attempt*, told apart by the
PaymentMethod that Stripe creates for each confirmation; attempts are numbered in the order the
shop learns of them, and the shop starts attempt n+1 only once attempt n is known to have
expired, so an unknown PaymentMethod is always the newest attempt. The rank is judged within the
current attempt: a newer attempt starts again from ``created`` (so ``expired`` →
``awaiting_payment`` takes the stock back), news of an older one changes nothing, and money is
money: ``succeeded`` from any attempt makes the order ``paid``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ichido import Transaction
from ichido.outbox import enqueue
from ichido.shop import notices, shipments, stock, transfers

RANK = {"created": 0, "awaiting_payment": 1, "partially_paid": 2, "failed": 3, "expired": 4,
        "canceled": 4, "abandoned": 4, "paid": 5, "partially_refunded": 6, "refunded": 7}
WAITING = ("konbini", "paypay", "customer_balance")  # methods whose payment comes later
RELEASED = ("failed", "expired", "canceled", "abandoned")
ACTIVE_REFUNDS = ("pending", "requires_action", "succeeded")
ORDER_COLUMNS = ("id, product_id, product_name, kind, quantity, amount, payment_method, email,"
                 " status, payment_intent, voucher_url, voucher_expires_at, voucher_stores,"
                 " failure, created_at, updated_at, locale, attempt, checkout_session,"
                 " checkout_url, redirect_url, transfer, amount_remaining, hold_until, customer")
CHECKOUT = "checkout"  # the method of a Checkout order until the buyer has chosen one


def status_for_payment(pi: dict[str, Any]) -> str | None:
    """The order status a PaymentIntent snapshot implies, or None when it implies nothing.

    A konbini payment that ends unpaid expired (Stripe cancels it, or returns it to
    ``requires_payment_method`` with an error, depending on the integration): either way the
    voucher is dead and the order is ``expired``. A bank transfer canceled after the shop's hold
    expired too; a PayPay payment the shop canceled unauthorised was ``abandoned``. A bank
    transfer that has received part of its amount is ``partially_paid``.
    """
    status = pi.get("status")
    types = pi.get("payment_method_types") or []
    konbini, transfer = "konbini" in types, "customer_balance" in types
    if status == "succeeded":
        return "paid"
    if status == "requires_action" and any(m in types for m in WAITING):
        return "partially_paid" if transfer and remaining(pi) < pi.get("amount", 0) \
            else "awaiting_payment"
    if status == "canceled":
        if konbini or transfer:
            return "expired"
        return "abandoned" if pi.get("cancellation_reason") == "abandoned" else "canceled"
    if status == "requires_payment_method" and pi.get("last_payment_error"):
        return "expired" if konbini else "failed"
    return None


def remaining(pi: dict[str, Any]) -> int:
    """What a bank transfer's PaymentIntent still waits for (its amount when it says nothing)."""
    shown = ((pi.get("next_action") or {}).get("display_bank_transfer_instructions") or {})
    value = shown.get("amount_remaining")
    return int(value) if isinstance(value, int) else int(pi.get("amount") or 0)


def load(tx: Transaction, order_id: str) -> dict[str, Any] | None:
    row = tx.execute(f"SELECT {ORDER_COLUMNS} FROM shop_orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        return None
    return dict(zip([c.strip() for c in ORDER_COLUMNS.split(",")], row))


def find_by_payment(tx: Transaction, pi: dict[str, Any]) -> dict[str, Any] | None:
    """Our order for a PaymentIntent (or a Checkout Session): by the metadata we set (the
    event may come before we stored the object's id), else by the PaymentIntent's id."""
    order_id = (pi.get("metadata") or {}).get("order_id")
    if order_id:
        return load(tx, order_id)
    row = tx.execute("SELECT id FROM shop_orders WHERE payment_intent = ?", (pi.get("id"),)).fetchone()
    return load(tx, row[0]) if row else None


def lock(tx: Transaction, order_id: str) -> None:
    """Take the order's row first, so every writer of one order queues in the same place."""
    tx.execute("UPDATE shop_orders SET updated_at = updated_at WHERE id = ?", (order_id,))


def apply_payment_intent(tx: Transaction, pi: dict[str, Any]) -> str | None:
    """Move the order to what the snapshot implies, if that is forward; run its effects once.

    Returns the new status, or None when nothing changed.
    """
    order = find_by_payment(tx, pi)
    if order is None:
        return None  # not one of ours: a PaymentIntent made elsewhere on the account
    lock(tx, order["id"])
    order = load(tx, order["id"]) or order
    now = time.time()
    tx.execute("UPDATE shop_orders SET payment_intent = ? WHERE id = ? AND payment_intent IS NULL",
               (pi["id"], order["id"]))
    target = status_for_payment(pi)
    if order["checkout_session"] and target in RELEASED:
        target = None  # a buyer on the Checkout page may try again: the session says when not
    learn_method(tx, order, pi)
    attempt = attempt_of(tx, order["id"], pi) or order["attempt"]
    if attempt < order["attempt"] and target != "paid":
        return None  # an older voucher's news: the order has moved on to a newer one
    action = pi.get("next_action") or {}
    voucher = action.get("konbini_display_details") or {}
    if voucher.get("hosted_voucher_url"):
        record_voucher(tx, order, voucher, attempt)
    if (action.get("redirect_to_url") or {}).get("url"):
        tx.execute("UPDATE shop_orders SET redirect_url = ? WHERE id = ?",
                   (action["redirect_to_url"]["url"], order["id"]))
    if action.get("display_bank_transfer_instructions"):
        transfers.record(tx, order, action["display_bank_transfer_instructions"])
    before = order["status"]
    newer = attempt > order["attempt"] and RANK[before] < RANK["paid"]
    if newer:
        tx.execute("UPDATE shop_orders SET attempt = ? WHERE id = ?", (attempt, order["id"]))
    if target is None:
        return None
    return move(tx, order, target, now, floor=RANK["created"] if newer else None,
                error=(pi.get("last_payment_error") or {}).get("message"))


def move(tx: Transaction, order: dict[str, Any], target: str, now: float, *,
         floor: int | None = None, error: str | None = None) -> str | None:
    """The one place an order's payment status changes: forward only (above ``floor``, by
    default its current rank), by a conditional update, so each transition and its effects
    happen once whichever event (PaymentIntent or Checkout Session) brings it first."""
    before = order["status"]
    if RANK[target] <= (RANK[before] if floor is None else floor) or target == before:
        return None
    changed = tx.execute(
        "UPDATE shop_orders SET status = ?, updated_at = ?, failure = COALESCE(?, failure)"
        " WHERE id = ? AND status = ?", (target, now, error, order["id"], before)).rowcount
    if not changed:
        return None
    _on_payment_status(tx, order, before, target, now)
    return target


def learn_method(tx: Transaction, order: dict[str, Any], obj: dict[str, Any]) -> None:
    """A Checkout order learns how the buyer paid (it decides which mails a refund sends)."""
    if order["payment_method"] != CHECKOUT:
        return
    method = method_named(obj)
    if method:
        set_method(tx, order, method)


def method_named(obj: dict[str, Any]) -> str | None:
    """The payment method type Stripe names in a snapshot, or None: a Charge's
    ``payment_method_details.type``; a PaymentIntent's konbini voucher
    (``next_action.type``), or its only allowed type. Never a type a failed attempt used: on
    the Checkout page the buyer may still pay another way."""
    details = obj.get("payment_method_details") or {}
    if details.get("type"):
        return str(details["type"])
    action = (obj.get("next_action") or {}).get("type")
    if action in ("konbini_display_details", "display_bank_transfer_instructions"):
        return "konbini" if action == "konbini_display_details" else "customer_balance"
    types = obj.get("payment_method_types") or []
    return str(types[0]) if len(types) == 1 else None


def apply_charge(tx: Transaction, charge: dict[str, Any]) -> None:
    """A Charge: only what it says of the method (its payment is the PaymentIntent's news)."""
    order = find_by_payment(tx, {"id": charge.get("payment_intent"),
                                 "metadata": charge.get("metadata")})
    if order is not None and order["payment_method"] == CHECKOUT:
        lock(tx, order["id"])
        learn_method(tx, order, charge)


def set_method(tx: Transaction, order: dict[str, Any], method: str) -> None:
    tx.execute("UPDATE shop_orders SET payment_method = ? WHERE id = ? AND payment_method = ?",
               (method, order["id"], CHECKOUT))
    order["payment_method"] = method


def attempt_of(tx: Transaction, order_id: str, pi: dict[str, Any]) -> int | None:
    """The number of the payment attempt this snapshot is about, by its PaymentMethod (a new
    one is numbered next), or None when the snapshot names none."""
    method = pi.get("payment_method")
    if not method:
        method = (pi.get("last_payment_error") or {}).get("payment_method")
    if isinstance(method, dict):
        method = method.get("id")
    if not method:
        return None
    row = tx.execute("SELECT seq FROM shop_payment_attempts WHERE order_id = ? AND"
                     " payment_method = ?", (order_id, method)).fetchone()
    if row is not None:
        return int(row[0])
    seq = 1 + int(tx.execute("SELECT COALESCE(MAX(seq), 0) FROM shop_payment_attempts"
                             " WHERE order_id = ?", (order_id,)).fetchone()[0])
    tx.execute("INSERT INTO shop_payment_attempts (order_id, seq, payment_method) VALUES (?, ?, ?)",
               (order_id, seq, method))
    return seq


def record_voucher(tx: Transaction, order: dict[str, Any], voucher: dict[str, Any],
                   attempt: int) -> None:
    """The voucher is a fact of its attempt whatever the order's status: recorded, and mailed,
    the first time any snapshot shows it, so the outcome does not depend on which event came
    first. A newer attempt's voucher replaces the old one (``voucher-2``, ``voucher-3`` ...)."""
    url = voucher["hosted_voucher_url"]
    recorded = tx.execute(
        "UPDATE shop_orders SET voucher_url = ?, voucher_expires_at = ?, voucher_stores = ?"
        " WHERE id = ? AND (voucher_url IS NULL OR voucher_url <> ?)",
        (url, voucher.get("expires_at"), orjson.dumps(voucher.get("stores") or {}).decode(),
         order["id"], url),
    ).rowcount
    if recorded:
        what = "voucher" if attempt == 1 else f"voucher-{attempt}"
        enqueue(tx, "mail", f"mail:{order['id']}:{what}", notices.voucher(order, voucher))


def _on_payment_status(tx: Transaction, order: dict[str, Any], before: str, after: str,
                       now: float) -> None:
    if after in RELEASED and before not in RELEASED:
        stock.release(tx, order)
    elif before in RELEASED and after not in RELEASED:
        # Money came in, or a new voucher was issued, after we let the stock go: take it back
        # if it is still there; if not, the parcel waits for a person (shipments.create).
        stock.take_if_left(tx, order)
    if after == "paid":
        transfers.settle(tx, order)
        fulfil(tx, order, now)
        settle_refunds(tx, order["id"], now)  # a refund seen before its payment counts now


def fulfil(tx: Transaction, order: dict[str, Any], now: float) -> None:
    """A ticket grants access; a physical item gets a shipment. Never before ``paid``."""
    oid = order["id"]
    if order["kind"] == "video_ticket":
        tx.execute("INSERT INTO shop_entitlements (order_id, product_id, email, granted_at)"
                   " VALUES (?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
                   (oid, order["product_id"], order["email"], now))
    else:
        shipments.create(tx, order, now)
    enqueue(tx, "mail", f"mail:{oid}:paid", notices.paid(order))


def settle_refunds(tx: Transaction, order_id: str, now: float) -> None:
    """The order's refund status, derived from its refunds (each of which only moves forward),
    so it may go down again when a refund fails: a full refund revokes access or stops the
    shipment once; a refund that then fails gives access back and resumes the parcel (or, if
    its item is gone meanwhile, flags it for a person).
    """
    order = load(tx, order_id)
    if order is None or RANK[order["status"]] < RANK["paid"]:
        return
    placeholders = ", ".join("?" for _ in ACTIVE_REFUNDS)
    refunded = int(tx.execute(f"SELECT COALESCE(SUM(amount), 0) FROM shop_refunds"
                              f" WHERE order_id = ? AND status IN ({placeholders})",
                              (order_id, *ACTIVE_REFUNDS)).fetchone()[0])
    target = ("refunded" if refunded >= order["amount"] else
              "partially_refunded" if refunded > 0 else "paid")
    if target == order["status"]:
        return
    tx.execute("UPDATE shop_orders SET status = ?, updated_at = ? WHERE id = ?",
               (target, now, order_id))
    if target != "refunded":
        tx.execute("UPDATE shop_entitlements SET revoked_at = NULL WHERE order_id = ?",
                   (order_id,))
        shipments.resume(tx, order, now)
        return
    tx.execute("UPDATE shop_entitlements SET revoked_at = ? WHERE order_id = ?"
               " AND revoked_at IS NULL", (now, order_id))
    shipments.stop(tx, order, now)
