"""Streaming subscriptions: what Stripe Billing's events say, recorded as facts that only
accumulate, never as the last snapshot (subscription webhooks are where ordering hurts most:
``customer.subscription.updated`` before ``.created``; ``invoice.paid``,
``invoice.payment_succeeded`` and ``.updated`` in one second). The access to the stream is
derived from these facts in ``access``.

The status shown is the latest snapshot by the event's ``created`` second; within one second,
the later stage of the lifecycle wins (``STAGE``); once ended, it stays ended. Invoices only move
forward (``INVOICE_RANK``), and each remembers its PaymentIntent (a refund names it) and since
when it is late (the grace period runs from it, see ``access``).
"""

from __future__ import annotations

import time
from typing import Any

from ichido.errors import RetryLater
from ichido.db.base import Transaction
from ichido.outbox import enqueue
from ichido.shop import access, notices
from ichido.shop.messages import iso

ENDED = ("canceled", "incomplete_expired")
DEFAULT_GRACE = 3 * 86400.0  # ShopSettings.subscription_grace_seconds
STAGE = {"created": 0, "incomplete": 1, "trialing": 2, "active": 3, "past_due": 4, "unpaid": 5,
         "paused": 5, "incomplete_expired": 6, "canceled": 7}
INVOICE_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}
EVENTS = ("customer.subscription.created", "customer.subscription.updated",
          "customer.subscription.deleted", "customer.subscription.trial_will_end")
INVOICE_EVENTS = ("invoice.created", "invoice.finalized", "invoice.sent", "invoice.paid",
                  "invoice.payment_succeeded", "invoice.payment_failed", "invoice.overdue",
                  "invoice.voided", "invoice.marked_uncollectible")
COLUMNS = ("id, plan, email, payment_method, locale, stripe_subscription, status, status_at,"
           " ended, current_period_end")


def load(tx: Transaction, sub_id: str) -> dict[str, Any] | None:
    row = tx.execute(f"SELECT {COLUMNS} FROM shop_subscriptions WHERE id = ?",
                     (sub_id,)).fetchone()
    return None if row is None else dict(zip([c.strip() for c in COLUMNS.split(",")], row))


def ours(tx: Transaction, stripe_id: str | None, metadata: dict[str, Any] | None) -> str | None:
    by_metadata = (metadata or {}).get("subscription_id")
    if by_metadata:
        return by_metadata
    row = tx.execute("SELECT id FROM shop_subscriptions WHERE stripe_subscription = ?",
                     (stripe_id,)).fetchone()
    return row[0] if row else None


def lock(tx: Transaction, sub_id: str) -> None:
    tx.execute("UPDATE shop_subscriptions SET status_at = status_at WHERE id = ?", (sub_id,))


def apply_subscription(tx: Transaction, sub: dict[str, Any], at: int, deleted: bool, *,
                       grace: float = DEFAULT_GRACE, now: float | None = None) -> None:
    """A Subscription snapshot from an event created at ``at`` (Unix seconds); ``now`` is the
    shop's clock for the grace period (tests pass one)."""
    sub_id = ours(tx, sub.get("id"), sub.get("metadata"))
    if sub_id is None:
        return  # a subscription made elsewhere on the account
    lock(tx, sub_id)
    current = load(tx, sub_id)
    if current is None:
        raise RetryLater(f"subscription {sub_id} is not recorded yet")
    tx.execute("UPDATE shop_subscriptions SET stripe_subscription = ? WHERE id = ?"
               " AND stripe_subscription IS NULL", (sub["id"], sub_id))
    status = "canceled" if deleted else sub.get("status") or current["status"]
    end = sub.get("current_period_end") or max(  # on the items since basil
        (i.get("current_period_end") or 0 for i in (sub.get("items") or {}).get("data", [])),
        default=None)
    if end is not None:
        tx.execute("UPDATE shop_subscriptions SET current_period_end = ? WHERE id = ? AND"
                   " (current_period_end IS NULL OR current_period_end < ?)", (end, sub_id, end))
    if status in ENDED:
        tx.execute("UPDATE shop_subscriptions SET ended = 1 WHERE id = ?", (sub_id,))
    newer = at > current["status_at"] or (
        at == current["status_at"] and STAGE.get(status, 0) > STAGE.get(current["status"], 0))
    if newer and not (current["ended"] and status not in ENDED):
        tx.execute("UPDATE shop_subscriptions SET status = ?, status_at = ? WHERE id = ?",
                   (status, at, sub_id))
    access.settle(tx, sub_id, time.time() if now is None else now, grace)


def apply_invoice(tx: Transaction, invoice: dict[str, Any], *, grace: float = DEFAULT_GRACE,
                  now: float | None = None) -> None:
    """An Invoice snapshot: recorded forward only; its konbini voucher mailed once."""
    parent = (invoice.get("parent") or {}).get("subscription_details")  # since basil
    if parent:
        invoice = {**invoice, "subscription": parent.get("subscription"),
                   "subscription_details": parent}
    if not invoice.get("subscription"):
        return
    sub_id = ours(tx, invoice["subscription"], (invoice.get("subscription_details") or {})
                  .get("metadata"))
    if sub_id is None:
        # The invoice may come before we stored the subscription's id: retry, never drop.
        raise RetryLater(f"invoice {invoice.get('id')}: subscription {invoice['subscription']}"
                         " is not known yet")
    lock(tx, sub_id)
    status = invoice.get("status") or "draft"
    row = tx.execute("SELECT status FROM shop_subscription_invoices WHERE id = ?",
                     (invoice["id"],)).fetchone()
    url = invoice.get("hosted_invoice_url")
    tx.execute("UPDATE shop_subscriptions SET stripe_subscription = ? WHERE id = ?"
               " AND stripe_subscription IS NULL", (invoice["subscription"], sub_id))
    if row is None:
        tx.execute("INSERT INTO shop_subscription_invoices (id, subscription_id, amount, status,"
                   " voucher_url, period_end, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (invoice["id"], sub_id, invoice.get("amount_due") or 0, status, url,
                    invoice.get("period_end"), invoice.get("created") or 0))
    elif INVOICE_RANK.get(status, 0) > INVOICE_RANK.get(row[0], 0):
        tx.execute("UPDATE shop_subscription_invoices SET status = ? WHERE id = ?",
                   (status, invoice["id"]))
    for column, value in (("voucher_url", url), ("payment_intent", invoice.get("payment_intent")),
                          ("late_since", late_since(invoice))):
        if value:  # facts: once known, they stay
            tx.execute(f"UPDATE shop_subscription_invoices SET {column} = ? WHERE id = ?"
                       f" AND {column} IS NULL", (value, invoice["id"]))
    sub = load(tx, sub_id)
    assert sub is not None
    if url and invoice.get("due_date") and invoice.get("collection_method") == "send_invoice" \
            and invoice.get("amount_due"):  # finalized: its voucher and deadline exist
        enqueue(tx, "mail", f"mail:{sub_id}:invoice-{invoice['id']}",
                notices.subscription_voucher(sub, invoice))
    access.settle(tx, sub_id, time.time() if now is None else now, grace)


def late_since(invoice: dict[str, Any]) -> int | None:
    """When an unpaid invoice starts to be late: a konbini (``send_invoice``) one at its due
    date, a card one at its creation (the start of the period it bills)."""
    if invoice.get("collection_method") == "send_invoice":
        return invoice.get("due_date")
    return invoice.get("created")


def to_json(tx: Transaction, sub_id: str) -> dict[str, Any] | None:
    sub = load(tx, sub_id)
    if sub is None:
        return None
    entitled = tx.execute("SELECT granted_at, revoked_at, revoked_reason FROM"
                          " shop_subscription_access WHERE subscription_id = ?",
                          (sub_id,)).fetchone()
    invoices = tx.execute("SELECT id, amount, status, voucher_url FROM shop_subscription_invoices"
                          " WHERE subscription_id = ? ORDER BY created, id", (sub_id,)).fetchall()
    return {
        "id": sub["id"], "status": sub["status"], "plan": sub["plan"],
        "payment_method": sub["payment_method"], "email": sub["email"],
        "stripe_subscription": sub["stripe_subscription"],
        "current_period_end": iso(sub["current_period_end"]),
        "entitlement": None if entitled is None else
        {"granted_at": iso(entitled[0]), "revoked_at": iso(entitled[1]),
         "reason": (entitled[2] or "").split(":")[0] or None},
        "invoices": [{"id": r[0], "amount": int(r[1]), "status": r[2],
                      "voucher": {"url": r[3]} if r[3] and sub["payment_method"] == "konbini"
                      else None} for r in invoices],
    }
