"""The shop's webhook handlers, registered through the same ``app.on`` that users use.

Each applies the event's own snapshot (``data.object``) and never re-fetches from the API: the
state machines in ``orders``, ``subscriptions`` and ``access`` decide from Stripe's status
whether the snapshot moves anything.

Every handler first checks the event's API version (``versions``), and marks ``ignored`` with
its reason what the shop did not create (``foreign``), so neither is applied wrongly nor
retried until it goes dead.
"""

from __future__ import annotations

from typing import Callable

from ichido import App, Event, Transaction
from ichido.shop import checkout, foreign, orders, refunds, subscriptions, versions

PAYMENT_EVENTS = (
    "payment_intent.created", "payment_intent.requires_action", "payment_intent.processing",
    "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
    "payment_intent.partially_funded",  # a bank transfer received part of its amount
)
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
Handler = Callable[[Event, Transaction], None]


def register(app: App, grace: float = subscriptions.DEFAULT_GRACE,
             wait: float = subscriptions.DEFAULT_PARENT_WAIT) -> None:
    """The shop's handlers on ``app``; ``grace`` is the subscription grace period and ``wait``
    how long an event may wait for its parent (``ShopSettings``), both in seconds."""
    patience = foreign.Patience(wait, app.settings.max_attempts)

    def guarded(apply: Handler) -> Handler:
        def handler(event: Event, tx: Transaction) -> None:
            if (unsupported := versions.unsupported(event.api_version)) is not None:
                versions.warn_once(unsupported)
                event.ignore(unsupported)
                return
            try:
                apply(event, tx)
            except foreign.NotOurs as exc:
                event.ignore(exc.reason)
            except foreign.ParentPending as exc:
                if patience.lasts(event.created, event.attempt):
                    raise
                event.ignore(f"{exc.reason}:waited")
        handler.__name__ = apply.__name__
        return handler

    def on_subscription(event: Event, tx: Transaction) -> None:
        subscriptions.apply_subscription(
            tx, event.object, at=event.created, grace=grace,
            deleted=event.type == "customer.subscription.deleted")

    def on_invoice(event: Event, tx: Transaction) -> None:
        subscriptions.apply_invoice(tx, event.object, grace=grace, wait=wait)

    def on_invoice_payment(event: Event, tx: Transaction) -> None:
        if not subscriptions.apply_invoice_payment(tx, event.object):
            # kept all the same: the invoice's own event may come later
            event.ignore("unknown_invoice")

    def on_refund(event: Event, tx: Transaction) -> None:
        refunds.apply_refund(tx, event.object, grace=grace, wait=wait)

    def on_charge_refunded(event: Event, tx: Transaction) -> None:
        """The charge lists its refunds; each one is applied as if its own event had come."""
        orders.apply_charge(tx, event.object)
        for refund in (event.object.get("refunds") or {}).get("data") or []:
            refunds.apply_refund(tx, refund, grace=grace, wait=wait)

    app.on(*PAYMENT_EVENTS)(guarded(on_payment_intent))
    app.on(*REFUND_EVENTS)(guarded(on_refund))
    app.on("charge.refunded")(guarded(on_charge_refunded))
    app.on("charge.succeeded")(guarded(on_charge))
    app.on(*checkout.EVENTS)(guarded(on_checkout_session))
    app.on(*subscriptions.EVENTS)(guarded(on_subscription))
    app.on(*subscriptions.INVOICE_EVENTS)(guarded(on_invoice))
    app.on(*subscriptions.INVOICE_PAYMENT_EVENTS)(guarded(on_invoice_payment))


def on_checkout_session(event: Event, tx: Transaction) -> None:
    checkout.apply_session(tx, event.type, event.object)


def on_payment_intent(event: Event, tx: Transaction) -> None:
    orders.apply_payment_intent(tx, event.object)


def on_charge(event: Event, tx: Transaction) -> None:
    """A charge names the method the buyer paid with (``payment_method_details.type``)."""
    orders.apply_charge(tx, event.object)
