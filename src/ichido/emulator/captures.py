"""Manual capture: a card authorized now, captured (or canceled) later.

docs.stripe.com/payments/place-a-hold-on-a-payment-method: with ``capture_method=manual`` a
confirmed card PaymentIntent stops in ``requires_capture`` with ``amount_capturable`` set; its
charge is ``succeeded`` but ``captured: false`` (``charge.succeeded``,
``payment_intent.amount_capturable_updated``). ``POST /v1/payment_intents/{id}/capture``
(``amount_to_capture`` up to the authorized amount; the rest is released) makes the charge
``captured`` (``charge.captured``) and the PaymentIntent ``succeeded``. The balance transaction
(and its fee) is written at capture, for the captured amount. Canceling an uncaptured
PaymentIntent releases the hold (``payment_intents/{id}/cancel``, as before).
"""

from __future__ import annotations

from typing import Any, Callable

from ichido.emulator import forms, ledger
from ichido.emulator.errors import invalid, unexpected_state
from ichido.emulator.fees import Pricing
from ichido.emulator.state import Store, snapshot


def authorize(store: Store, pi: dict[str, Any], charge: dict[str, Any]) -> dict[str, Any]:
    """The card is authorized; nothing is captured yet."""
    charge.update(captured=False, amount_captured=0)
    pi.update(status="requires_capture", amount_capturable=pi["amount"], next_action=None,
              last_payment_error=None)
    store.emit("charge.succeeded", charge)
    store.emit("payment_intent.amount_capturable_updated", pi)
    return pi


class Captures:
    def __init__(self, store: Store, pricing: Pricing,
                 tell: Callable[[dict[str, Any], bool], None]) -> None:
        self.store, self.pricing, self.tell = store, pricing, tell

    def capture(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"amount_to_capture", "metadata", "expand"})
        pi = self.store.get("payment_intent", pi_id, "intent")
        if pi["status"] != "requires_capture":
            raise unexpected_state(
                f"This PaymentIntent could not be captured because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                "be captured: requires_capture.", payment_intent=snapshot(pi))
        amount = forms.amount(params, "amount_to_capture")
        amount = pi["amount_capturable"] if amount is None else amount
        if amount > pi["amount_capturable"]:
            raise invalid("The amount to capture is more than the amount capturable.",
                          param="amount_to_capture", code="amount_too_large")
        charge = self.store.get("charge", pi["latest_charge"])
        before = snapshot(charge)
        charge.update(captured=True, amount_captured=amount)
        if "metadata" in params:
            pi["metadata"] = {**pi["metadata"], **forms.metadata(params)}
        ledger.charge_transaction(self.store, charge, "card", self.pricing, amount)
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self.store.emit_update("charge.captured", charge, before)
        self.store.emit("payment_intent.succeeded", pi)
        self.tell(pi, True)
        return pi
