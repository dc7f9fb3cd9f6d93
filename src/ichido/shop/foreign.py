"""What the shop did not create: told apart from what it did, at once where it can be.

A Stripe account holds more than the shop's objects: subscriptions made in the Dashboard or by
another application, refunds of charges made before PaymentIntents existed, one-off invoices.
Their events reach the shop's handlers too. Retrying them cannot help (the shop will never
know them), so the handler marks the event ``ignored`` with a reason (``Event.ignore``):

- ``unsupported_api_version:<version>``: an event in a version the shop cannot read
  (``versions``);
- ``not_a_subscription_invoice``: an invoice with no subscription parent;
- ``unknown_subscription:<id>``: an invoice of a subscription the shop never made;
- ``no_payment_intent``: a refund of a pre-PaymentIntent charge (``payment_intent`` null);
- ``unknown_payment:<id>``: a refund of a PaymentIntent no order or invoice of the shop has.

The shop knows its own: every subscription it makes carries ``metadata.subscription_id`` (an
invoice repeats it under ``parent.subscription_details.metadata``), and each of its rows keeps
the Stripe id once known. One thing can really arrive before its parent: an event of an object
the shop is creating right now, whose Stripe id it has not stored yet (the create call has not
answered, or a Checkout Session's PaymentIntent not yet named). Only while such a row exists
(``pending_*`` below) does the event wait (``ichido.RetryLater``): retried at least once, then
while it is younger than ``ShopSettings.parent_wait_seconds`` (from its ``created``), and never
past the worker's last attempt (``ICHIDO_MAX_ATTEMPTS``; with the default retries that comes
after one to two minutes, and the shop warns at start when it comes before the setting): then it
is ignored with its reason and ``:waited``, so it never goes dead. Workers that were down longer
than the setting may thus ignore an event whose parent waits behind it in the backlog: replay
it (``ichido replay --status ignored``) once the backlog is done.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from ichido import Transaction
from ichido.errors import RetryLater

_ID = re.compile(r"[A-Za-z0-9_]{1,255}")


class NotOurs(Exception):
    """Raised by an ``apply_*`` before it writes anything: the object is not the shop's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ParentPending(RetryLater):
    """The object may be the shop's own, still being created: retried while patience lasts,
    then ignored with ``reason``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def shown_id(value: Any) -> str:
    """An id for a reason code: only when it looks like one (it is the sender's data)."""
    value = value.get("id") if isinstance(value, dict) else value
    return value if isinstance(value, str) and _ID.fullmatch(value) else "unreadable"


def id_of(value: Any) -> str | None:
    """An expandable field: an id, or the expanded object's id."""
    value = value.get("id") if isinstance(value, dict) else value
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Patience:
    """How long an event that may be the shop's own waits for its parent."""

    seconds: float
    max_attempts: int

    def lasts(self, created: int, attempt: int, now: float | None = None) -> bool:
        """Whether to retry once more. The first attempt always is retried (events stored
        together, after a backlog or a reconcile, are then applied in another order); never
        the worker's last (it would go dead)."""
        now = time.time() if now is None else now
        return attempt < self.max_attempts and (attempt == 1 or now - created < self.seconds)


def retries_span(max_attempts: int, base: float, cap: float) -> float:
    """The least time the worker's retries of one event span (its backoff without jitter's
    random half): past it, an event waiting for its parent is ignored whatever the setting."""
    return sum(min(cap, base * 2.0 ** (n - 1)) / 2 for n in range(1, max_attempts))


def pending_subscription(tx: Transaction, since: float) -> bool:
    """A subscription the shop asked Stripe for (recorded since ``since``) whose Stripe id it
    has not stored yet: an unknown subscription's invoice may be its."""
    return tx.execute("SELECT 1 FROM shop_subscriptions WHERE stripe_subscription IS NULL"
                      " AND ended = 0 AND created_at >= ? LIMIT 1", (since,)).fetchone() is not None


def pending_payment(tx: Transaction, since: float) -> bool:
    """Something of the shop's whose PaymentIntent it may not know yet, so that an unknown
    PaymentIntent's refund may be its: an order without one (a Checkout order names it only
    when its session completes) or a subscription (its invoices' PaymentIntents are Stripe's
    own) recorded since ``since``, or a paid invoice of the shop's whose payment
    (``invoice_payment.paid``) has not been told yet."""
    for sql in ("SELECT 1 FROM shop_orders WHERE payment_intent IS NULL AND created_at >= ?",
                "SELECT 1 FROM shop_subscriptions WHERE created_at >= ?",
                "SELECT 1 FROM shop_subscription_invoices WHERE payment_intent IS NULL"
                " AND status = 'paid' AND amount > 0 AND ? IS NOT NULL"):
        if tx.execute(sql + " LIMIT 1", (since,)).fetchone() is not None:
            return True
    return False
