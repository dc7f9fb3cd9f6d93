"""Streaming subscriptions: what Stripe Billing's events say, recorded as facts that only
accumulate, never as the last snapshot (subscription webhooks are where ordering hurts most:
``customer.subscription.updated`` before ``.created``; ``invoice.paid``,
``invoice.payment_succeeded`` and ``.updated`` in one second). The access to the stream is
derived from these facts in ``access``.

The status shown is the latest snapshot by the event's ``created`` second; within one second,
the later stage of the lifecycle wins (``STAGE``); once ended, it stays ended. Invoices only move
forward (``INVOICE_RANK``), and each remembers its PaymentIntent (a refund names it) and since
when it is late (the grace period runs from it, see ``access``).

Objects are read in the shapes of ``2025-03-31.basil`` and later (``versions``): an invoice's
subscription under ``parent.subscription_details``, its payments under ``payments`` (present
only when expanded: ``invoice_payment.paid`` names them too, ``apply_invoice_payment``), a
subscription's period on its items.
"""

from __future__ import annotations

import time
from typing import Any

from ichido import Transaction
from ichido.outbox import enqueue
from ichido.shop import access, foreign, notices
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
INVOICE_PAYMENT_EVENTS = ("invoice_payment.paid",)
DEFAULT_PARENT_WAIT = 60.0  # ShopSettings.parent_wait_seconds
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
    if sub_id is not None:
        lock(tx, sub_id)
    current = load(tx, sub_id) if sub_id is not None else None
    if sub_id is None or current is None:  # made elsewhere: the shop records its own first
        raise foreign.NotOurs(f"unknown_subscription:{foreign.shown_id(sub.get('id'))}")
    tx.execute("UPDATE shop_subscriptions SET stripe_subscription = ? WHERE id = ?"
               " AND stripe_subscription IS NULL", (sub["id"], sub_id))
    status = "canceled" if deleted else sub.get("status") or current["status"]
    end = period_end(sub)
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


def period_end(sub: dict[str, Any]) -> int | None:
    """The end of the current period: on the subscription's items since basil (the latest of
    them; one item for the shop's plans)."""
    ends = [item.get("current_period_end") for item in
            ((sub.get("items") or {}).get("data") or []) if isinstance(item, dict)]
    ends = [end for end in ends if isinstance(end, int)]
    return max(ends) if ends else None


def subscription_of(invoice: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The invoice's Stripe subscription and that subscription's metadata (the snapshot that
    Stripe keeps under ``parent.subscription_details``)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return foreign.id_of(details.get("subscription")), details.get("metadata") or {}


def payment_intent_of(invoice: dict[str, Any]) -> str | None:
    """The PaymentIntent that paid the invoice, when ``payments`` is expanded: the paid
    ``invoice_payment``, else the default one."""
    payments = [p for p in ((invoice.get("payments") or {}).get("data") or [])
                if isinstance(p, dict)]
    payments.sort(key=lambda p: (p.get("status") != "paid", not p.get("is_default")))
    for payment in payments:
        found = foreign.id_of((payment.get("payment") or {}).get("payment_intent"))
        if found:
            return found
    return None


def whose_invoice(tx: Transaction, invoice: dict[str, Any], since: float) -> str:
    """The shop's subscription id for an invoice; raises ``NotOurs`` for another's, and
    ``ParentPending`` while a subscription the shop is making may turn out to be its."""
    stripe_id, metadata = subscription_of(invoice)
    if stripe_id is None:
        raise foreign.NotOurs("not_a_subscription_invoice")
    sub_id = ours(tx, stripe_id, metadata)
    if sub_id is not None and load(tx, sub_id) is not None:
        return sub_id  # (another shop's metadata names a row this one never recorded)
    reason = f"unknown_subscription:{foreign.shown_id(stripe_id)}"
    if foreign.pending_subscription(tx, since):
        raise foreign.ParentPending(f"invoice {foreign.shown_id(invoice.get('id'))}: subscription"
                                    f" {foreign.shown_id(stripe_id)} is not known yet", reason)
    raise foreign.NotOurs(reason)


def apply_invoice(tx: Transaction, invoice: dict[str, Any], *, grace: float = DEFAULT_GRACE,
                  now: float | None = None, wait: float = DEFAULT_PARENT_WAIT) -> None:
    """An Invoice snapshot: recorded forward only; its konbini voucher mailed once. ``wait``:
    how far back a subscription being made may still be this invoice's (``foreign``)."""
    sub_id = whose_invoice(tx, invoice, (invoice.get("created") or 0) - wait)
    stripe_id = subscription_of(invoice)[0]
    lock(tx, sub_id)
    status = invoice.get("status") or "draft"
    row = tx.execute("SELECT status FROM shop_subscription_invoices WHERE id = ?",
                     (invoice["id"],)).fetchone()
    url = invoice.get("hosted_invoice_url")
    tx.execute("UPDATE shop_subscriptions SET stripe_subscription = ? WHERE id = ?"
               " AND stripe_subscription IS NULL", (stripe_id, sub_id))
    if row is None:
        tx.execute("INSERT INTO shop_subscription_invoices (id, subscription_id, amount, status,"
                   " voucher_url, period_end, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (invoice["id"], sub_id, invoice.get("amount_due") or 0, status, url,
                    invoice.get("period_end"), invoice.get("created") or 0))
    elif INVOICE_RANK.get(status, 0) > INVOICE_RANK.get(row[0], 0):
        tx.execute("UPDATE shop_subscription_invoices SET status = ? WHERE id = ?",
                   (status, invoice["id"]))
    linked = tx.execute("SELECT payment_intent FROM shop_invoice_payments WHERE invoice_id = ?"
                        " ORDER BY payment_intent LIMIT 1", (invoice["id"],)).fetchone()
    payment_intent = payment_intent_of(invoice) or (linked[0] if linked else None)
    for column, value in (("voucher_url", url), ("payment_intent", payment_intent),
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


def apply_invoice_payment(tx: Transaction, payment: dict[str, Any]) -> bool:
    """``invoice_payment.paid``: which PaymentIntent paid which invoice (a refund names the
    PaymentIntent only). The link is kept whoever's the invoice is, since this event may come
    before the invoice's own; True when it names an invoice of the shop's."""
    invoice_id = foreign.id_of(payment.get("invoice"))
    payment_intent = foreign.id_of((payment.get("payment") or {}).get("payment_intent"))
    if invoice_id is None or payment_intent is None:
        return False
    tx.execute("INSERT INTO shop_invoice_payments (payment_intent, invoice_id) VALUES (?, ?)"
               " ON CONFLICT (payment_intent) DO NOTHING", (payment_intent, invoice_id))
    return bool(tx.execute("UPDATE shop_subscription_invoices SET payment_intent = ? WHERE id = ?"
                           " AND payment_intent IS NULL", (payment_intent, invoice_id)).rowcount
                or tx.execute("SELECT 1 FROM shop_subscription_invoices WHERE id = ?",
                              (invoice_id,)).fetchone())


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
