"""``POST /v1/invoices/{id}/pay`` is one path for every invoice, a subscription's or one made
by hand: a card that needs 3D Secure answers 402 ``invoice_payment_intent_requires_action``
with ``invoice.payment_action_required``, as Stripe does, and so does a renewal's own attempt.
(Subscription invoices had a pay path of their own that called a 3D Secure card declined.)"""

from __future__ import annotations

import httpx
import stripe

from ichido.emulator import Emulator
from tests.emulator.test_billing import card_customer, plan, renew, seen, types_since

NEEDS_3DS = "pm_card_authenticationRequired"


def _open_renewal(sdk: stripe.StripeClient, emulator: Emulator) -> str:
    """A subscription whose renewal invoice stays open: its card declines."""
    sub = sdk.v1.subscriptions.create(params={"customer": card_customer(sdk).id,
                                              "items": [{"price": plan(sdk).id}]})
    sdk.v1.subscriptions.update(sub.id, params={"default_payment_method":
                                                "pm_card_chargeCustomerFail"})
    renew(emulator, sub)
    invoice = sdk.v1.invoices.retrieve(sdk.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert invoice.status == "open"
    return invoice.id


def test_a_subscription_invoice_paid_with_a_3ds_card_asks_for_action(
        sdk: stripe.StripeClient, emulator: Emulator, http: httpx.Client) -> None:
    invoice_id = _open_renewal(sdk, emulator)
    before = seen(emulator)
    answer = http.post(f"/v1/invoices/{invoice_id}/pay", data={"payment_method": NEEDS_3DS})
    assert answer.status_code == 402, answer.text
    assert answer.json()["error"]["code"] == "invoice_payment_intent_requires_action"
    assert "invoice.payment_action_required" in types_since(emulator, before)


def test_hand_made_and_subscription_invoices_answer_alike(
        sdk: stripe.StripeClient, emulator: Emulator, http: httpx.Client) -> None:
    """The same cards give the same answers on both kinds of invoice."""
    customer = card_customer(sdk)
    http.post("/v1/invoiceitems", data={"customer": customer.id, "amount": "500",
                                        "currency": "jpy"})
    made = http.post("/v1/invoices", data={"customer": customer.id,
                                           "pending_invoice_items_behavior": "include"}).json()
    for invoice_id in (made["id"], _open_renewal(sdk, emulator)):
        declined = http.post(f"/v1/invoices/{invoice_id}/pay",
                             data={"payment_method": "pm_card_chargeDeclined"})
        assert (declined.status_code, declined.json()["error"]["code"]) == \
            (402, "card_declined"), invoice_id
        needs = http.post(f"/v1/invoices/{invoice_id}/pay", data={"payment_method": NEEDS_3DS})
        assert needs.json()["error"]["code"] == "invoice_payment_intent_requires_action"
        paid = http.post(f"/v1/invoices/{invoice_id}/pay",
                         data={"payment_method": "pm_card_visa"})
        assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text


def test_a_renewal_charged_to_a_3ds_card_asks_for_action_then_is_paid(
        sdk: stripe.StripeClient, emulator: Emulator, http: httpx.Client) -> None:
    sub = sdk.v1.subscriptions.create(params={"customer": card_customer(sdk).id,
                                              "items": [{"price": plan(sdk).id}]})
    sdk.v1.subscriptions.update(sub.id, params={"default_payment_method": NEEDS_3DS})
    before = seen(emulator)
    renew(emulator, sub)
    assert "invoice.payment_action_required" in types_since(emulator, before)
    invoice = sdk.v1.invoices.retrieve(sdk.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert invoice.status == "open"
    intent = next(e["data"]["object"] for e in emulator.events()
                  if e["type"] == "payment_intent.requires_action"
                  and e["data"]["object"]["amount"] == invoice.amount_due)
    http.post(f"/_emulator/payment_intents/{intent['id']}/authenticate")
    assert sdk.v1.invoices.retrieve(invoice.id).status == "paid"
