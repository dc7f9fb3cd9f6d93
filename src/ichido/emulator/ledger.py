"""Money movements: the balance transaction of a charge (with Stripe Japan's fee) or a refund.

The fee comes from the pricing data the emulator was given (``fees``): give it the same file
as the shop's fee guard, and a test can compare what the emulator charged with what the shop
predicted. Refunds give no fee back: the refund's balance transaction has ``fee = 0`` and the
charge keeps its fee (Stripe's refunds page: a refund "might incur a fee"; the original
processing fee is not returned). Konbini funds become available after 4 business days
(docs.stripe.com/payments/konbini); we use four calendar days for every method.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import objects
from ichido.emulator.fees import Pricing
from ichido.emulator.state import Store

AVAILABLE_AFTER = 4 * 86400


def charge_transaction(store: Store, charge: dict[str, Any], method: str,
                       pricing: Pricing, amount: int | None = None) -> dict[str, Any]:
    """The charge's balance transaction, its fee from the pricing data; links it.
    ``amount``: what was captured, when a manual capture takes less than the charge."""
    amount = charge["amount"] if amount is None else amount
    fee = pricing.fee(amount, method)
    details = [{"amount": fee, "application": None, "currency": charge["currency"],
                "description": "Stripe processing fees", "type": "stripe_fee"}]
    now = store.clock.now()
    txn = objects.balance_transaction(amount, charge["currency"], now, charge["id"],
                                      kind="charge", fee=fee, fee_details=details,
                                      available_on=now + AVAILABLE_AFTER)
    store.add(txn)
    charge["balance_transaction"] = txn["id"]
    return txn


def intent_paid(store: Store, pricing: Pricing, pi: dict[str, Any], pm: dict[str, Any],
                details: dict[str, Any], **charge_fields: Any) -> dict[str, Any]:
    """A payment that lands in full once the buyer has acted (a konbini voucher paid, a PayPay
    authorisation, a bank transfer completed): its succeeded charge with the fee of the method
    ``details["type"]``, the intent succeeded, and both events. Returns the charge."""
    charge = store.add(objects.charge(pi, pm, store.clock.now(), status="succeeded",
                                      outcome=objects.outcome("authorized"), details=details,
                                      **charge_fields))
    charge_transaction(store, charge, details["type"], pricing)
    pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=charge["id"],
              next_action=None)
    store.emit("charge.succeeded", charge)
    store.emit("payment_intent.succeeded", pi)
    return charge


def refund_transaction(store: Store, refund: dict[str, Any], *, reverse: bool = False) -> str:
    """Money out for a refund (or back in when it fails or is canceled): no fee either way."""
    now = store.clock.now()
    amount = refund["amount"] if reverse else -refund["amount"]
    kind = "refund_failure" if reverse else "refund"
    txn = objects.balance_transaction(amount, refund["currency"], now, refund["id"], kind=kind,
                                      fee=0, fee_details=[], available_on=now)
    txn["status"] = "available"
    store.add(txn)
    return txn["id"]
