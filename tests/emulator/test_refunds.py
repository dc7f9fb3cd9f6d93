"""Refunds: card at once; konbini through the buyer's bank details, with Stripe's events."""

from __future__ import annotations

import httpx
import pytest
import stripe

from ichido.emulator import Emulator
from tests.emulator.support import card_params, konbini_params


def paid_konbini(sdk: stripe.StripeClient, http: httpx.Client, amount: int = 1500) -> str:
    pi = sdk.v1.payment_intents.create(params=konbini_params("fill_never@test.com", amount))
    assert http.post(f"/_emulator/payment_intents/{pi.id}/pay").status_code == 200
    return pi.id


def events_for(emulator: Emulator, object_id: str) -> list[dict[str, object]]:
    return [e for e in emulator.events() if e["data"]["object"]["id"] == object_id]


def test_card_refund_partial_then_rest_then_nothing_left(sdk: stripe.StripeClient,
                                                         emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=card_params(amount=3000))
    partial = sdk.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000,
                                            "reason": "requested_by_customer"})
    assert (partial.status, partial.amount, partial.charge) == ("succeeded", 1000,
                                                                pi.latest_charge)
    charge = sdk.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (1000, False)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.refunds.create(params={"charge": charge.id, "amount": 2001})
    assert (caught.value.code, caught.value.param) == ("amount_too_large", "amount")
    rest = sdk.v1.refunds.create(params={"charge": charge.id})
    assert rest.amount == 2000 and sdk.v1.charges.retrieve(charge.id).refunded
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.refunds.create(params={"payment_intent": pi.id})
    assert caught.value.code == "charge_already_refunded"
    txn = sdk.v1.balance_transactions.retrieve(partial.balance_transaction)
    assert (txn.amount, txn.fee, txn.type) == (-1000, 0, "refund")  # the fee stays spent
    refunded = [e for e in events_for(emulator, charge.id) if e["type"] == "charge.refunded"]
    assert refunded[0]["data"]["previous_attributes"]["amount_refunded"] == 0
    assert [e["type"] for e in events_for(emulator, partial.id)] == ["refund.created"]


def test_refunds_need_a_successful_payment(sdk: stripe.StripeClient) -> None:
    open_pi = sdk.v1.payment_intents.create(params={"amount": 500, "currency": "jpy"})
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.refunds.create(params={"payment_intent": open_pi.id})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.refunds.create(params={"amount": 5})
    assert caught.value.param == "charge"


def test_konbini_refund_waits_for_bank_details_then_succeeds(
        sdk: stripe.StripeClient, http: httpx.Client, emulator: Emulator) -> None:
    pi_id = paid_konbini(sdk, http)
    refund = sdk.v1.refunds.create(params={"payment_intent": pi_id, "amount": 500})
    assert refund.status == "requires_action" and refund.next_action.type == "display_details"
    shown = refund.next_action.display_details
    assert shown.email_sent.email_sent_to == "fill_never@test.com"
    assert shown.expires_at == shown.email_sent.email_sent_at + 45 * 86400
    assert refund.instructions_email == "fill_never@test.com"
    answer = http.post(f"/_emulator/refunds/{refund.id}/bank_details",
                       data={"account_number": "0001234"})
    assert answer.json()["status"] == "pending" and "next_action" not in answer.json()
    emulator.settle()
    assert sdk.v1.refunds.retrieve(refund.id).status == "succeeded"
    history = [(e["type"], e["data"]["object"]["status"]) for e in events_for(emulator,
                                                                                refund.id)]
    assert history == [("refund.created", "requires_action"),
                       ("refund.updated", "pending"), ("charge.refund.updated", "pending"),
                       ("refund.updated", "succeeded"), ("charge.refund.updated", "succeeded")]
    updated = events_for(emulator, refund.id)[1]
    assert updated["data"]["previous_attributes"]["status"] == "requires_action"
    assert updated["request"] == {"id": None, "idempotency_key": None}


def test_failing_test_bank_account_asks_again(sdk: stripe.StripeClient, http: httpx.Client,
                                              emulator: Emulator) -> None:
    refund = sdk.v1.refunds.create(params={"payment_intent": paid_konbini(sdk, http)})
    http.post(f"/_emulator/refunds/{refund.id}/bank_details", data={"account_number": "1111113"})
    emulator.settle()
    again = sdk.v1.refunds.retrieve(refund.id)
    assert again.status == "requires_action" and again.next_action.type == "display_details"


def test_konbini_refund_without_details_fails_after_45_days(
        sdk: stripe.StripeClient, http: httpx.Client, emulator: Emulator) -> None:
    pi_id = paid_konbini(sdk, http, amount=2000)
    refund = sdk.v1.refunds.create(params={"payment_intent": pi_id})
    charge_id = refund.charge
    assert sdk.v1.charges.retrieve(charge_id).amount_refunded == 2000
    emulator.advance(45 * 86400)
    failed = sdk.v1.refunds.retrieve(refund.id)
    assert failed.status == "failed" and failed.failure_balance_transaction
    assert sdk.v1.charges.retrieve(charge_id).amount_refunded == 0
    assert "refund.failed" in [e["type"] for e in events_for(emulator, refund.id)]


def test_test_helper_expire_and_cancel(sdk: stripe.StripeClient, http: httpx.Client) -> None:
    pi_id = paid_konbini(sdk, http, amount=3000)
    first = sdk.v1.refunds.create(params={"payment_intent": pi_id, "amount": 1000})
    expired = http.post(f"/v1/test_helpers/refunds/{first.id}/expire").json()
    assert expired["status"] == "failed"
    second = sdk.v1.refunds.create(params={"payment_intent": pi_id, "amount": 1000})
    assert sdk.v1.refunds.cancel(second.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.refunds.cancel(second.id)
    listed = sdk.v1.refunds.list(params={"payment_intent": pi_id})
    assert [r.id for r in listed.data] == [second.id, first.id]
