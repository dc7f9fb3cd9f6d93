"""The shop's webhook handlers, registered through the same ``app.on`` that users use.

Each applies the event's own snapshot (``data.object``) and never re-fetches from the API: the
state machines in ``orders``, ``subscriptions`` and ``access`` decide from Stripe's status
whether the snapshot moves anything.
"""

from __future__ import annotations

from ichido.app import App
from ichido.shop import checkout, orders, refunds, subscriptions
from ichido.event import Event
from ichido.db.base import Transaction

PAYMENT_EVENTS = (
    "payment_intent.created", "payment_intent.requires_action", "payment_intent.processing",
    "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
)
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")


def register(app: App, grace: float = subscriptions.DEFAULT_GRACE) -> None:
    """The shop's handlers on ``app``; ``grace`` is the subscription grace period in seconds."""

    def on_subscription(event: Event, tx: Transaction) -> None:
        subscriptions.apply_subscription(
            tx, event.object, at=event.created, grace=grace,
            deleted=event.type == "customer.subscription.deleted")

    def on_invoice(event: Event, tx: Transaction) -> None:
        subscriptions.apply_invoice(tx, event.object, grace=grace)

    def on_refund(event: Event, tx: Transaction) -> None:
        refunds.apply_refund(tx, event.object, grace=grace)

    def on_charge_refunded(event: Event, tx: Transaction) -> None:
        """The charge lists its refunds; each one is applied as if its own event had come."""
        orders.apply_charge(tx, event.object)
        for refund in (event.object.get("refunds") or {}).get("data") or []:
            refunds.apply_refund(tx, refund, grace=grace)

    app.on(*PAYMENT_EVENTS)(on_payment_intent)
    app.on(*REFUND_EVENTS)(on_refund)
    app.on("charge.refunded")(on_charge_refunded)
    app.on("charge.succeeded")(on_charge)
    app.on(*checkout.EVENTS)(on_checkout_session)
    app.on(*subscriptions.EVENTS)(on_subscription)
    app.on(*subscriptions.INVOICE_EVENTS)(on_invoice)


def on_checkout_session(event: Event, tx: Transaction) -> None:
    checkout.apply_session(tx, event.type, event.object)


def on_payment_intent(event: Event, tx: Transaction) -> None:
    orders.apply_payment_intent(tx, event.object)


def on_charge(event: Event, tx: Transaction) -> None:
    """A charge names the method the buyer paid with (``payment_method_details.type``)."""
    orders.apply_charge(tx, event.object)
