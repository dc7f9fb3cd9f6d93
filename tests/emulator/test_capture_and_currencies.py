"""Manual capture and currencies other than yen, through the official Python SDK: what the
CLI's ``charge.captured`` and ``payment_intent.amount_capturable_updated`` triggers cause, with
the money right (the fee is on what was captured; two-decimal currencies count cents)."""

from __future__ import annotations

import pytest
import stripe

from ichido.emulator import Emulator


def test_a_manual_capture_takes_part_of_the_hold(sdk: stripe.StripeClient,
                                                 emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params={
        "amount": 2000, "currency": "usd", "capture_method": "manual", "confirm": True,
        "payment_method": "pm_card_visa"})
    assert (pi.status, pi.amount_capturable, pi.amount_received) == ("requires_capture", 2000, 0)
    charge = sdk.v1.charges.retrieve(pi.latest_charge)
    assert (charge.captured, charge.balance_transaction) == (False, None)
    done = sdk.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 1500})
    assert (done.status, done.amount_received, done.amount_capturable) == ("succeeded", 1500, 0)
    charge = sdk.v1.charges.retrieve(pi.latest_charge)
    txn = sdk.v1.balance_transactions.retrieve(charge.balance_transaction)
    assert (charge.captured, charge.amount_captured, txn.amount) == (True, 1500, 1500)
    assert txn.fee == emulator.pricing.fee(1500, "card")
    types = [e["type"] for e in emulator.events()]
    assert types == ["payment_intent.created", "charge.succeeded",
                     "payment_intent.amount_capturable_updated", "charge.captured",
                     "payment_intent.succeeded"]
    with pytest.raises(stripe.InvalidRequestError) as again:
        sdk.v1.payment_intents.capture(pi.id)
    assert again.value.code == "payment_intent_unexpected_state"


def test_more_than_the_hold_is_refused(sdk: stripe.StripeClient) -> None:
    pi = sdk.v1.payment_intents.create(params={
        "amount": 2000, "currency": "eur", "capture_method": "manual", "confirm": True,
        "payment_method": "pm_card_mastercard"})
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        sdk.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 2001})
    assert too_much.value.param == "amount_to_capture"
    assert sdk.v1.payment_intents.cancel(pi.id).status == "canceled"


@pytest.mark.parametrize(("currency", "smallest", "too_small"),
                         [("jpy", 50, 49), ("usd", 50, 49), ("eur", 50, 49)])
def test_each_currency_has_its_minimum_in_its_smallest_unit(
        sdk: stripe.StripeClient, currency: str, smallest: int, too_small: int) -> None:
    """¥50 (yen has no minor unit), $0.50, €0.50 (docs.stripe.com/currencies)."""
    ok = sdk.v1.payment_intents.create(params={"amount": smallest, "currency": currency,
                                               "confirm": True,
                                               "payment_method": "pm_card_visa"})
    assert (ok.status, ok.amount_received, ok.currency) == ("succeeded", smallest, currency)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.create(params={"amount": too_small, "currency": currency})
    assert refused.value.code == "amount_too_small"


def test_a_shipping_address_and_a_customer_are_kept(sdk: stripe.StripeClient) -> None:
    """``stripe trigger payment_intent.succeeded`` sends ``shipping``; it was refused."""
    customer = sdk.v1.customers.create()
    pi = sdk.v1.payment_intents.create(params={
        "amount": 2000, "currency": "usd", "confirm": True, "payment_method": "pm_card_visa",
        "customer": customer.id, "shipping": {"name": "Jenny Rosen", "address": {
            "line1": "510 Townsend St", "postal_code": "94103", "city": "San Francisco",
            "state": "CA", "country": "US"}}})
    assert pi.shipping.address.city == "San Francisco" and pi.customer == customer.id
    assert sdk.v1.charges.retrieve(pi.latest_charge).customer == customer.id
