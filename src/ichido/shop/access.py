"""The access a subscription gives to the stream, each change of it exactly once.

Facts decide it, never the order they arrive in: the subscription's invoices (their status
only moves forward), its end, refunds of its invoices, and the clock.

- **granted** once, when any invoice is first seen paid (a trial's ¥0 invoice included);
- **kept** while an invoice is unpaid, up to the grace period
  (``ShopSettings.subscription_grace_seconds``) after the invoice became late: a card invoice
  (``charge_automatically``) from its creation, the start of the period it bills (the card is
  charged within the hour, then retried for days while ``past_due``); a konbini invoice
  (``send_invoice``) from its due date, since open and not yet due is how konbini is paid;
- **suspended** after that, by whichever comes first: an event, or the sweep (``sweep``), for a
  buyer who simply does not pay sends no event. Stripe's dunning may still collect: once that
  invoice is paid (or voided), access comes back (**restored**), whatever any clock says (a
  sweep on another host may run ahead of a worker). A suspension is a decision on
  what is known at the time: a payment whose webhook is late past the grace period suspends,
  then restores, once each;
- **revoked** for good when the subscription ends (``customer.subscription.deleted``, or a
  snapshot ``canceled`` / ``incomplete_expired``), or when a paid invoice is refunded in full:
  the buyer has their money back, so the shop also cancels the subscription at Stripe (through
  the outbox), else Stripe would go on charging for access the shop no longer gives. A partial
  refund is a goodwill credit: access is unchanged. A full refund that later fails does not give
  access back: the subscription is canceled by then.

Each change is a row of ``shop_access_changes`` keyed (subscription, change, cause): the key is
the check, so a duplicate event, a second sweep, or a sweep racing an event changes nothing
twice, and a change's mail is queued in the same transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ichido import Transaction, poll
from ichido.outbox import enqueue
from ichido.shop import notices

ACTIVE_REFUNDS = ("pending", "requires_action", "succeeded")
REFUND_RANK = {"pending": 0, "requires_action": 1, "succeeded": 2, "failed": 2, "canceled": 2}
UNPAID = ("open", "uncollectible")
BATCH = 100
log = logging.getLogger("ichido.shop.access")


def settle(tx: Transaction, sub_id: str, now: float, grace: float) -> list[str]:
    """Bring the access in line with the facts known at ``now``; the changes made (each made
    once ever). The caller holds the subscription's lock."""
    made = []
    paid = tx.execute("SELECT count(*) FROM shop_subscription_invoices WHERE subscription_id = ?"
                      " AND status = 'paid'", (sub_id,)).fetchone()[0]
    if paid and tx.execute("INSERT INTO shop_subscription_access (subscription_id, granted_at)"
                           " VALUES (?, ?) ON CONFLICT (subscription_id) DO NOTHING",
                           (sub_id, now)).rowcount:
        made += _changed(tx, sub_id, "granted", "paid", now)
    access = tx.execute("SELECT revoked_reason FROM shop_subscription_access"
                        " WHERE subscription_id = ?", (sub_id,)).fetchone()
    if access is None:
        return made
    final = _final_cause(tx, sub_id)
    if final is not None:
        return made + _revoke(tx, sub_id, final, now)
    if access[0] in ("ended", "refunded"):
        return made
    if access[0] is not None:  # suspended: lifted once that invoice is settled, not by a clock
        if _unpaid(tx, access[0].removeprefix("unpaid:")):
            return made
        made += _changed(tx, sub_id, "restored", access[0].removeprefix("unpaid:"), now)
        tx.execute("UPDATE shop_subscription_access SET revoked_at = NULL, revoked_reason = NULL"
                   " WHERE subscription_id = ?", (sub_id,))
    late = _late_invoice(tx, sub_id, now - grace)
    if late is not None:
        made += _suspend(tx, sub_id, late, now)
    return made


def _unpaid(tx: Transaction, invoice_id: str) -> bool:
    row = tx.execute("SELECT status FROM shop_subscription_invoices WHERE id = ?",
                     (invoice_id,)).fetchone()
    return row is not None and row[0] in UNPAID


def _final_cause(tx: Transaction, sub_id: str) -> str | None:
    """``refunded`` outranks ``ended`` (a refund leads to the end), so the reason does not
    depend on which of the two the shop heard of first."""
    marks = ", ".join("?" for _ in ACTIVE_REFUNDS)
    refunded = tx.execute(
        f"SELECT i.id FROM shop_subscription_invoices i JOIN shop_subscription_refunds r"
        f" ON r.invoice_id = i.id WHERE i.subscription_id = ? AND i.amount > 0"
        f" AND r.status IN ({marks}) GROUP BY i.id, i.amount HAVING SUM(r.amount) >= i.amount",
        (sub_id, *ACTIVE_REFUNDS)).fetchone()
    if refunded:
        return "refunded"
    ended = tx.execute("SELECT ended FROM shop_subscriptions WHERE id = ?", (sub_id,)).fetchone()
    return "ended" if ended and ended[0] else None


def _late_invoice(tx: Transaction, sub_id: str, cutoff: float) -> str | None:
    """The oldest unpaid invoice late since before ``cutoff`` (now less the grace period)."""
    row = tx.execute("SELECT id FROM shop_subscription_invoices WHERE subscription_id = ?"
                     " AND status IN (?, ?) AND late_since IS NOT NULL AND late_since < ?"
                     " ORDER BY late_since, id LIMIT 1", (sub_id, *UNPAID, cutoff)).fetchone()
    return None if row is None else row[0]


def _revoke(tx: Transaction, sub_id: str, cause: str, now: float) -> list[str]:
    if cause == "refunded":  # ours to stop: Stripe does not cancel on a refund
        enqueue(tx, "stripe_cancel_subscription", f"ichido-cancel-{sub_id}",
                {"subscription_id": sub_id})
    # Access lost at a suspension stays lost since then; ``refunded`` replaces ``ended``.
    tx.execute("UPDATE shop_subscription_access SET revoked_at = COALESCE(revoked_at, ?),"
               " revoked_reason = ? WHERE subscription_id = ? AND (revoked_reason IS NULL"
               " OR revoked_reason NOT IN ('ended', 'refunded') OR ? = 'refunded')",
               (now, cause, sub_id, cause))
    made = _changed(tx, sub_id, "revoked", "final", now)
    if made:
        _mail(tx, sub_id, "access-ended", "access.ended")
    return made


def _suspend(tx: Transaction, sub_id: str, invoice_id: str, now: float) -> list[str]:
    made = _changed(tx, sub_id, "suspended", invoice_id, now)
    if made:  # never twice for one invoice: once paid, an invoice stays paid
        tx.execute("UPDATE shop_subscription_access SET revoked_at = ?, revoked_reason = ?"
                   " WHERE subscription_id = ?", (now, f"unpaid:{invoice_id}", sub_id))
        _mail(tx, sub_id, f"access-suspended-{invoice_id}", "access.suspended")
    return made


def _changed(tx: Transaction, sub_id: str, change: str, cause: str, now: float) -> list[str]:
    inserted = tx.execute("INSERT INTO shop_access_changes (subscription_id, change, cause, at)"
                          " VALUES (?, ?, ?, ?) ON CONFLICT (subscription_id, change, cause)"
                          " DO NOTHING", (sub_id, change, cause, now)).rowcount
    return [f"{change}:{cause}"] if inserted else []


def _mail(tx: Transaction, sub_id: str, what: str, message: str) -> None:
    sub = tx.execute("SELECT id, plan, email, locale FROM shop_subscriptions WHERE id = ?",
                     (sub_id,)).fetchone()
    enqueue(tx, "mail", f"mail:{sub_id}:{what}", notices.access(
        {"id": sub[0], "plan": sub[1], "email": sub[2], "locale": sub[3]}, message))


def changes(tx: Transaction, sub_id: str) -> list[str]:
    """``change:cause`` of every change the subscription's access went through."""
    return sorted(f"{r[0]}:{r[1]}" for r in tx.execute(
        "SELECT change, cause FROM shop_access_changes WHERE subscription_id = ?", (sub_id,)))


# -- refunds of a subscription's invoices --------------------------------------------------------

def record_refund(tx: Transaction, refund: dict[str, Any]) -> str | None:
    """Record a Refund of one of our invoices (forward only); its subscription, or None when
    its payment is no invoice the shop knows (yet)."""
    row = tx.execute("SELECT id, subscription_id FROM shop_subscription_invoices"
                     " WHERE payment_intent = ?", (refund.get("payment_intent"),)).fetchone()
    if row is None:  # the invoice's payment named by ``invoice_payment.paid`` only
        row = tx.execute("SELECT i.id, i.subscription_id FROM shop_invoice_payments p JOIN"
                         " shop_subscription_invoices i ON i.id = p.invoice_id"
                         " WHERE p.payment_intent = ?", (refund.get("payment_intent"),)).fetchone()
    if row is None:
        return None
    tx.execute("UPDATE shop_subscriptions SET status_at = status_at WHERE id = ?", (row[1],))
    status = refund.get("status") or "pending"
    current = tx.execute("SELECT status FROM shop_subscription_refunds WHERE id = ?",
                         (refund["id"],)).fetchone()
    if current is None:
        tx.execute("INSERT INTO shop_subscription_refunds (id, invoice_id, subscription_id,"
                   " amount, status) VALUES (?, ?, ?, ?, ?)",
                   (refund["id"], row[0], row[1], int(refund["amount"]), status))
    elif REFUND_RANK.get(status, 0) > REFUND_RANK.get(current[0], 0):
        tx.execute("UPDATE shop_subscription_refunds SET status = ? WHERE id = ?",
                   (status, refund["id"]))
    return str(row[1])


# -- the clock: suspending those who never paid --------------------------------------------------

def overdue(store: Any, grace: float, now: float) -> list[str]:
    """Subscriptions whose access is on while an invoice is unpaid past the grace period."""
    with store.reading() as tx:
        return [r[0] for r in tx.execute(
            "SELECT DISTINCT i.subscription_id FROM shop_subscription_invoices i"
            " JOIN shop_subscription_access a ON a.subscription_id = i.subscription_id"
            " WHERE a.revoked_at IS NULL AND i.status IN (?, ?) AND i.late_since < ?"
            " ORDER BY i.subscription_id LIMIT ?", (*UNPAID, now - grace, BATCH)).fetchall()]


def sweep(store: Any, grace: float, now: float | None = None) -> int:
    """Suspend every subscription unpaid past the grace period at ``now``; how many were.
    Safe beside events and other sweeps: the change rows are the check."""
    now = time.time() if now is None else now
    total, seen = 0, set()
    while True:
        batch = [s for s in overdue(store, grace, now) if s not in seen]
        for sub_id in batch:
            seen.add(sub_id)
            with store.transaction() as tx:
                tx.execute("UPDATE shop_subscriptions SET status_at = status_at WHERE id = ?",
                           (sub_id,))
                total += any(c.startswith("suspended") for c in settle(tx, sub_id, now, grace))
        if len(batch) < BATCH:
            return total


def run(store: Any, grace: float, stop: threading.Event) -> None:
    """The background loop: a pass every tenth of the grace period (1 s to a minute apart)."""
    def one_pass() -> int:
        if suspended := sweep(store, grace):
            log.info("grace sweep: %d subscription(s) unpaid past the grace period suspended",
                     suspended)
        return 0  # then sleep the interval, whatever was done

    poll("grace sweep", one_pass, stop, None, min(max(grace / 10, 1.0), 60.0))
