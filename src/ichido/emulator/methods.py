"""PaymentMethods: Stripe's test cards by name, and konbini methods from
``payment_method_data``.

Test cards (docs.stripe.com/testing): passing ``pm_card_visa`` creates a new ``pm_…`` cloned
from Stripe's test card, as Stripe does; ``pm_card_chargeDeclined`` is declined with
``generic_decline``. Raw card numbers are not taken (Stripe refuses them by default too).
Konbini needs the buyer's name and e-mail in ``billing_details``: the e-mail receives the
voucher, picks the test-mode story, and later receives the refund instructions.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import forms, objects, versions
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store
from ichido.emulator.test_cards import TEST_CARDS

def resolve(store: Store, params: dict[str, Any], now: int) -> dict[str, Any] | None:
    """The PaymentMethod named by ``payment_method`` or built from ``payment_method_data``."""
    name = forms.text(params, "payment_method")
    data = forms.mapping(params, "payment_method_data")
    if name and data:
        raise invalid("You may only specify one of payment_method and payment_method_data.",
                      param="payment_method_data")
    if name in TEST_CARDS:
        return test_card(store, name, now)
    if name:
        return store.get("payment_method", name, "payment_method")
    return _from_data(store, data, now) if data else None


def test_card(store: Store, name: str, now: int, billing: dict[str, Any] | None = None,
              pm_id: str | None = None) -> dict[str, Any]:
    """A fresh ``pm_…`` cloned from Stripe's test card ``name`` (``pm_card_visa``,
    ``tok_visa``...); what its charges do is kept where only the emulator sees it.
    ``pm_id``: a ``card_…`` source's id, which Stripe takes wherever a PaymentMethod goes."""
    card = TEST_CARDS[name]
    pm = objects.payment_method("card", now, billing=billing, card=objects.test_card(
        card.brand, card.last4, card.funding))
    pm["id"] = pm_id or pm["id"]
    store.add(pm)
    store.private[pm["id"]] = {"decline": card.decline, "card": card}
    return pm


def _from_data(store: Store, data: dict[str, Any], now: int) -> dict[str, Any]:
    forms.check_known(data, {"type", "billing_details", "konbini", "metadata", *WITHOUT_DETAILS},
                      "payment_method_data")
    pm_type = forms.text(data, "type", required=True, param="payment_method_data[type]")
    if pm_type in WITHOUT_DETAILS:
        return _without_details(store, data, pm_type or "", now)
    if pm_type != "konbini":
        raise invalid("The emulator creates konbini PaymentMethods from payment_method_data; "
                      "use a test card such as pm_card_visa for cards.",
                      param="payment_method_data[type]")
    billing = forms.mapping(data, "billing_details", "payment_method_data[billing_details]")
    for field in ("name", "email"):
        forms.text(billing, field, required=True,
                   param=f"payment_method_data[billing_details][{field}]")
    return store.add(objects.payment_method("konbini", now, billing=billing))


# Methods made from ``payment_method_data`` with nothing but their type (and any billing details):
# PayPay (since ``2026-09-30.endive``) and bank transfers into the cash balance.
WITHOUT_DETAILS = ("paypay", "customer_balance")


def _without_details(store: Store, data: dict[str, Any], pm_type: str,
                     now: int) -> dict[str, Any]:
    if pm_type == "paypay" and versions.current() < versions.ENDIVE:
        raise invalid(f"Invalid payment_method_data[type]: paypay is not a payment method type "
                      f"in API version {versions.current()}.", param="payment_method_data[type]")
    forms.check_known(forms.mapping(data, pm_type, f"payment_method_data[{pm_type}]"), set(),
                      f"payment_method_data[{pm_type}]")
    billing = forms.mapping(data, "billing_details", "payment_method_data[billing_details]")
    return store.add(objects.payment_method(pm_type, now, billing=billing))
