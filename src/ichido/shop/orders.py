"""The order state machine. Every function takes the caller's transaction and is safe to run
twice with the same input: that, with the inbox's exactly-once processing, is what keeps a
duplicate or reordered event from doing anything twice.

Payment state moves only forward (I4), judged by Stripe's own object status, never by arrival
order:

    created → awaiting_payment → failed → expired | canceled → paid

A late ``requires_action`` after ``succeeded`` ranks lower and changes nothing. Past ``paid``,
``partially_refunded`` and ``refunded`` are derived from the order's refunds, each of which
only moves forward, so they too come out the same whatever order the events arrive in.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ichido.errors import RetryLater
from ichido.db.base import Transaction
from ichido.outbox import enqueue

RANK = {"created": 0, "awaiting_payment": 1, "failed": 2, "expired": 3, "canceled": 3,
        "paid": 4, "partially_refunded": 5, "refunded": 6}
RELEASED = ("failed", "expired", "canceled")
REFUND_RANK = {"pending": 0, "requires_action": 1, "succeeded": 2, "failed": 2, "canceled": 2}
ACTIVE_REFUNDS = ("pending", "requires_action", "succeeded")
ORDER_COLUMNS = ("id, product_id, product_name, kind, quantity, amount, payment_method, email,"
                 " status, payment_intent, voucher_url, voucher_expires_at, voucher_stores,"
                 " failure, created_at, updated_at")
SHIPPED_KINDS = ("physical", "live_item")


def status_for_payment(pi: dict[str, Any]) -> str | None:
    """The order status a PaymentIntent snapshot implies, or None when it implies nothing.

    A konbini payment that ends unpaid expired (Stripe cancels it, or returns it to
    ``requires_payment_method`` with an error, depending on the integration): either way the
    voucher is dead and the order is ``expired``.
    """
    status = pi.get("status")
    konbini = "konbini" in (pi.get("payment_method_types") or [])
    if status == "succeeded":
        return "paid"
    if status == "requires_action" and konbini:
        return "awaiting_payment"
    if status == "canceled":
        return "expired" if konbini else "canceled"
    if status == "requires_payment_method" and pi.get("last_payment_error"):
        return "expired" if konbini else "failed"
    return None


def load(tx: Transaction, order_id: str) -> dict[str, Any] | None:
    row = tx.execute(f"SELECT {ORDER_COLUMNS} FROM shop_orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        return None
    return dict(zip([c.strip() for c in ORDER_COLUMNS.split(",")], row))


def find_by_payment(tx: Transaction, pi: dict[str, Any]) -> dict[str, Any] | None:
    """Our order for a PaymentIntent: by the metadata we set (the event may come before we
    stored the PaymentIntent's id), else by the id."""
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
    voucher = (pi.get("next_action") or {}).get("konbini_display_details") or {}
    if voucher.get("hosted_voucher_url"):
        record_voucher(tx, order, voucher)
    target = status_for_payment(pi)
    if target is None or RANK[target] <= RANK[order["status"]]:
        return None
    error = (pi.get("last_payment_error") or {}).get("message")
    changed = tx.execute(
        "UPDATE shop_orders SET status = ?, updated_at = ?, failure = COALESCE(?, failure)"
        " WHERE id = ? AND status = ?",
        (target, now, error, order["id"], order["status"]),
    ).rowcount
    if not changed:
        return None
    _on_payment_status(tx, order, order["status"], target, now)
    return target


def record_voucher(tx: Transaction, order: dict[str, Any], voucher: dict[str, Any]) -> None:
    """The voucher is a fact of the order whatever its status: recorded, and mailed, the first
    time any snapshot shows it, so the outcome does not depend on which event came first."""
    recorded = tx.execute(
        "UPDATE shop_orders SET voucher_url = ?, voucher_expires_at = ?, voucher_stores = ?"
        " WHERE id = ? AND voucher_url IS NULL",
        (voucher["hosted_voucher_url"], voucher.get("expires_at"),
         orjson.dumps(voucher.get("stores") or {}).decode(), order["id"]),
    ).rowcount
    if recorded:
        enqueue(tx, "mail", f"mail:{order['id']}:voucher", voucher_mail(order, voucher))


def _on_payment_status(tx: Transaction, order: dict[str, Any], before: str, after: str,
                       now: float) -> None:
    if after in RELEASED and before not in RELEASED:
        release_stock(tx, order)
    elif after == "paid":
        if before in RELEASED:  # money came in after we let the stock go: take it back
            tx.execute("UPDATE shop_stock SET available = available - ? WHERE product_id = ?",
                       (order["quantity"], order["product_id"]))
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
        created = tx.execute("INSERT INTO shop_shipments (order_id, status, created_at, updated_at)"
                             " VALUES (?, 'ready_to_ship', ?, ?) ON CONFLICT (order_id) DO NOTHING",
                             (oid, now, now)).rowcount
        if created:
            enqueue(tx, "mail", f"mail:{oid}:warehouse-ship", warehouse_mail(order, "ship"))
    enqueue(tx, "mail", f"mail:{oid}:paid", paid_mail(order))


def release_stock(tx: Transaction, order: dict[str, Any]) -> None:
    if order["kind"] in SHIPPED_KINDS:
        tx.execute("UPDATE shop_stock SET available = available + ? WHERE product_id = ?",
                   (order["quantity"], order["product_id"]))


def apply_refund(tx: Transaction, refund: dict[str, Any]) -> str | None:
    """Record a Refund snapshot (forward only) and settle the order's refund state."""
    row = tx.execute("SELECT id FROM shop_orders WHERE payment_intent = ?",
                     (refund.get("payment_intent"),)).fetchone()
    if row is None:
        # The refund may come before we know its payment: retry, never drop (I4).
        raise RetryLater(f"refund {refund.get('id')}: payment {refund.get('payment_intent')} "
                         "is not known yet")
    order_id = row[0]
    lock(tx, order_id)
    status = refund.get("status") or "pending"
    next_action = orjson.dumps(refund["next_action"]).decode() if refund.get("next_action") else None
    current = tx.execute("SELECT status FROM shop_refunds WHERE id = ?", (refund["id"],)).fetchone()
    now = time.time()
    if current is None:
        tx.execute("INSERT INTO shop_refunds (id, order_id, amount, status, next_action, created,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                   (refund["id"], order_id, refund["amount"], status, next_action,
                    refund.get("created") or int(now), now))
    elif REFUND_RANK.get(status, 0) > REFUND_RANK.get(current[0], 0):
        tx.execute("UPDATE shop_refunds SET status = ?, next_action = ?, updated_at = ?"
                   " WHERE id = ?", (status, next_action, now, refund["id"]))
    else:
        return None
    settle_refunds(tx, order_id, now)
    return status


def settle_refunds(tx: Transaction, order_id: str, now: float) -> None:
    """The order's refund status, derived from its refunds (each of which only moves forward),
    so it may go down again when a refund fails: a full refund revokes access or stops the
    shipment once; a refund that then fails gives access back (a stopped parcel stays stopped).
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
        return
    tx.execute("UPDATE shop_entitlements SET revoked_at = ? WHERE order_id = ?"
               " AND revoked_at IS NULL", (now, order_id))
    stopped = tx.execute("UPDATE shop_shipments SET status = 'canceled', updated_at = ?"
                         " WHERE order_id = ? AND status = 'ready_to_ship'", (now, order_id)).rowcount
    if stopped:
        enqueue(tx, "mail", f"mail:{order_id}:warehouse-cancel", warehouse_mail(order, "cancel"))
        release_stock(tx, order)


def to_json(tx: Transaction, order_id: str) -> dict[str, Any] | None:
    """The order as the API and the CLI show it."""
    order = load(tx, order_id)
    if order is None:
        return None
    entitlement = tx.execute("SELECT granted_at, revoked_at FROM shop_entitlements"
                             " WHERE order_id = ?", (order_id,)).fetchone()
    shipment = tx.execute("SELECT status FROM shop_shipments WHERE order_id = ?",
                          (order_id,)).fetchone()
    refunds = tx.execute("SELECT id, amount, status, next_action FROM shop_refunds"
                         " WHERE order_id = ? ORDER BY created, id", (order_id,)).fetchall()
    voucher = None
    if order["voucher_url"]:
        voucher = {"url": order["voucher_url"], "expires_at": order["voucher_expires_at"],
                   "stores": orjson.loads(order["voucher_stores"] or "{}")}
    return {
        "id": order["id"], "status": order["status"], "product": order["product_id"],
        "quantity": order["quantity"], "amount": order["amount"], "currency": "jpy",
        "payment_method": order["payment_method"], "payment_intent": order["payment_intent"],
        "email": order["email"], "voucher": voucher, "failure": order["failure"],
        "entitlement": None if entitlement is None else
        {"granted_at": entitlement[0], "revoked_at": entitlement[1]},
        "shipment": None if shipment is None else {"status": shipment[0]},
        "refunds": [{"id": r[0], "amount": r[1], "status": r[2],
                     "next_action": orjson.loads(r[3]) if r[3] else None} for r in refunds],
        "created_at": order["created_at"], "updated_at": order["updated_at"],
    }


def recent(tx: Transaction, limit: int = 50) -> list[str]:
    return [row[0] for row in tx.execute(
        "SELECT id FROM shop_orders ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()]


def voucher_mail(order: dict[str, Any], voucher: dict[str, Any]) -> dict[str, Any]:
    stores = voucher.get("stores") or {}
    lines = [f"Thank you for your order {order['id']} ({order['product_name']}, ¥{order['amount']:,}).",
             "Pay in cash at a convenience store before the voucher expires:",
             f"  Voucher: {voucher.get('hosted_voucher_url')}",
             f"  Expires: {voucher.get('expires_at')} (Unix time)"]
    for store, codes in sorted(stores.items()):
        lines.append(f"  {store}: payment code {codes.get('payment_code')},"
                     f" confirmation {codes.get('confirmation_number')}")
    return {"order_id": order["id"], "to": order["email"], "subject": "Your konbini payment voucher",
            "body": "\n".join(lines)}


def paid_mail(order: dict[str, Any]) -> dict[str, Any]:
    what = ("Your access to the stream is ready." if order["kind"] == "video_ticket"
            else "We are preparing your parcel.")
    return {"order_id": order["id"], "to": order["email"], "subject": "Payment received",
            "body": f"We received ¥{order['amount']:,} for order {order['id']}. {what}"}


def warehouse_mail(order: dict[str, Any], action: str) -> dict[str, Any]:
    return {"order_id": order["id"], "to": None, "subject": f"[{action}] order {order['id']}",
            "body": f"{action}: {order['quantity']} × {order['product_id']} for {order['email']}"}
