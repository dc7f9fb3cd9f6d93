"""Stripe's test cards and tokens by name (docs.stripe.com/testing), as the CLI's fixtures and
stripe-node use them: each decline code, 3D Secure (then passed or failed through the control),
disputes, and ``tok_*`` tokens made into PaymentMethods."""

from __future__ import annotations

import httpx
import pytest
import stripe

from ichido.emulator import Emulator


@pytest.mark.parametrize(("card", "code"), [
    ("pm_card_visa_chargeDeclined", "generic_decline"),
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
    ("pm_card_chargeDeclinedFraudulent", "fraudulent")])
def test_a_declining_card_declines_with_its_code(sdk: stripe.StripeClient, card: str,
                                                 code: str) -> None:
    with pytest.raises(stripe.CardError) as declined:
        sdk.v1.payment_intents.create(params={"amount": 2000, "currency": "usd",
                                              "confirm": True, "payment_method": card})
    assert declined.value.code == "card_declined"
    assert declined.value.error.decline_code == code


@pytest.mark.parametrize(("result", "status", "last"), [
    ("succeed", "succeeded", "payment_intent.succeeded"),
    ("fail", "requires_payment_method", "payment_intent.payment_failed")])
def test_3d_secure_waits_for_the_buyer(sdk: stripe.StripeClient, http: httpx.Client,
                                       emulator: Emulator, result: str, status: str,
                                       last: str) -> None:
    pi = sdk.v1.payment_intents.create(params={
        "amount": 2000, "currency": "jpy", "confirm": True,
        "payment_method": "pm_card_authenticationRequired"})
    assert (pi.status, pi.next_action.type, pi.latest_charge) == \
        ("requires_action", "use_stripe_sdk", None)
    answer = http.post(f"/_emulator/payment_intents/{pi.id}/authenticate",
                       data={"result": result})
    assert answer.status_code == 200, answer.text
    assert sdk.v1.payment_intents.retrieve(pi.id).status == status
    assert emulator.events()[-1]["type"] == last


def test_a_disputed_card_opens_a_dispute_after_the_charge(sdk: stripe.StripeClient,
                                                          emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params={
        "amount": 2000, "currency": "jpy", "confirm": True,
        "payment_method": "pm_card_createDispute"})
    disputes = sdk.v1.disputes.list(params={"payment_intent": pi.id}).data
    assert [(d.status, d.charge) for d in disputes] == [("needs_response", pi.latest_charge)]
    assert sdk.v1.charges.retrieve(pi.latest_charge).disputed is True
    closed = sdk.v1.disputes.close(disputes[0].id)
    assert closed.status == "lost"
    assert [e["type"] for e in emulator.events()][-2:] == ["charge.dispute.created",
                                                           "charge.dispute.closed"]


def test_a_token_becomes_a_card_payment_method(sdk: stripe.StripeClient) -> None:
    pm = sdk.v1.payment_methods.create(params={"type": "card",
                                               "card": {"token": "tok_mastercard"}})
    assert (pm.type, pm.card.brand, pm.card.last4) == ("card", "mastercard", "4444")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        sdk.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_nope"}})
    assert unknown.value.code == "resource_missing"
