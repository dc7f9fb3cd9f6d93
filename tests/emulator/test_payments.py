"""PaymentIntents: cards, konbini vouchers and their test-mode stories, cancel, limits."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import stripe

from ichido.emulator import Emulator
from tests.emulator.support import card_params, konbini_params

JST = dt.timezone(dt.timedelta(hours=9))


def types_of(emulator: Emulator, object_id: str) -> list[str]:
    return [e["type"] for e in emulator.events() if e["data"]["object"]["id"] == object_id]


def test_visa_succeeds_with_a_charge_and_its_fee(sdk: stripe.StripeClient,
                                                 emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=card_params(amount=3000))
    assert (pi.status, pi.amount_received) == ("succeeded", 3000)
    charge = sdk.v1.charges.retrieve(pi.latest_charge)
    assert charge.paid and charge.captured and charge.payment_method_details.card.last4 == "4242"
    txn = sdk.v1.balance_transactions.retrieve(charge.balance_transaction)
    assert (txn.amount, txn.fee, txn.net) == (3000, 108, 2892)  # 3.6 %
    assert txn.fee_details[0].type == "stripe_fee"
    assert types_of(emulator, pi.id) == ["payment_intent.created", "payment_intent.succeeded"]
    assert types_of(emulator, charge.id) == ["charge.succeeded"]


def test_declined_card_is_a_402_and_the_intent_asks_for_another_method(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    with pytest.raises(stripe.CardError) as caught:
        sdk.v1.payment_intents.create(params=card_params("pm_card_chargeDeclined"))
    error = caught.value
    assert (error.http_status, error.code) == (402, "card_declined")
    body = error.json_body["error"]
    assert body["decline_code"] == "generic_decline" and body["type"] == "card_error"
    pi = sdk.v1.payment_intents.retrieve(body["payment_intent"]["id"])
    assert pi.status == "requires_payment_method" and pi.payment_method is None
    assert pi.last_payment_error.code == "card_declined"
    assert sdk.v1.charges.retrieve(pi.latest_charge).status == "failed"
    assert types_of(emulator, pi.id) == ["payment_intent.created",
                                         "payment_intent.payment_failed"]
    retried = sdk.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert retried.status == "succeeded"


def test_konbini_voucher_has_four_stores_and_a_unique_url(sdk: stripe.StripeClient) -> None:
    first = sdk.v1.payment_intents.create(params=konbini_params(expires_after_days=3))
    second = sdk.v1.payment_intents.create(params=konbini_params())
    assert first.status == "requires_action"
    assert first.next_action.type == "konbini_display_details"
    details = first.next_action.konbini_display_details
    stores = details.stores.to_dict()
    assert set(stores) == {"familymart", "lawson", "ministop", "seicomart"}
    assert all(s["payment_code"] and s["confirmation_number"] for s in stores.values())
    assert details.hosted_voucher_url != \
        second.next_action.konbini_display_details.hosted_voucher_url
    expiry = dt.datetime.fromtimestamp(details.expires_at, JST)
    confirmed = dt.datetime.fromtimestamp(first.created, JST)
    assert expiry.time() == dt.time(23, 59, 59)
    assert expiry.date() == confirmed.date() + dt.timedelta(days=3)
    assert first.payment_method_options.konbini.product_description == "Video ticket"


def test_plain_email_pays_after_three_minutes_of_emulator_clock(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=konbini_params("hanako@test.com"))
    emulator.advance(170)
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "requires_action"
    emulator.advance(10)
    paid = sdk.v1.payment_intents.retrieve(pi.id)
    assert paid.status == "succeeded" and paid.next_action is None
    charge = sdk.v1.charges.retrieve(paid.latest_charge)
    assert charge.payment_method_details.konbini.store.chain == "familymart"
    assert charge.billing_details.email == "hanako@test.com"
    txn = sdk.v1.balance_transactions.retrieve(charge.balance_transaction)
    assert (txn.fee, txn.net) == (274, 1226)  # ¥220 + 3.6 % of ¥1,500
    paid_event = [e for e in emulator.events() if e["type"] == "payment_intent.succeeded"][0]
    assert paid_event["request"] == {"id": None, "idempotency_key": None}


@pytest.mark.parametrize("email, status, expires_now", [
    ("succeed_immediately@test.com", "succeeded", False),
    ("x.expire_immediately@test.com", "requires_payment_method", True),
])
def test_immediate_test_emails(sdk: stripe.StripeClient, emulator: Emulator, email: str,
                               status: str, expires_now: bool) -> None:
    pi = sdk.v1.payment_intents.create(params=konbini_params(email))
    details = pi.next_action.konbini_display_details
    assert (details.expires_at == pi.created) is expires_now
    emulator.settle()
    assert sdk.v1.payment_intents.retrieve(pi.id).status == status


def test_expire_with_delay_fails_after_three_minutes(sdk: stripe.StripeClient,
                                                     emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=konbini_params("expire_with_delay@test.com"))
    assert pi.next_action.konbini_display_details.expires_at == pi.created + 180
    emulator.advance(180)
    expired = sdk.v1.payment_intents.retrieve(pi.id)
    assert expired.status == "requires_payment_method"
    assert expired.last_payment_error.code == "payment_intent_payment_attempt_expired"
    assert types_of(emulator, pi.id)[-1] == "payment_intent.payment_failed"


def test_fill_never_expires_at_the_voucher_deadline(sdk: stripe.StripeClient,
                                                    emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=konbini_params("fill_never@test.com",
                                                             expires_after_days=1))
    deadline = pi.next_action.konbini_display_details.expires_at
    emulator.advance(deadline - emulator.now() - 1)
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "requires_action"
    emulator.advance(1)
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"


def test_special_confirmation_number_wins_over_the_email(sdk: stripe.StripeClient,
                                                         emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=konbini_params(
        "fill_never@test.com", confirmation_number="22222222220"))
    emulator.settle()
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.create(params=konbini_params(confirmation_number="01234567890"))
    assert caught.value.code == "payment_intent_konbini_rejected_confirmation_number"


def test_controls_pay_at_a_chosen_store_and_expire(http: httpx.Client,
                                                   sdk: stripe.StripeClient) -> None:
    paid = sdk.v1.payment_intents.create(params=konbini_params("fill_never@test.com"))
    response = http.post(f"/_emulator/payment_intents/{paid.id}/pay", data={"store": "seicomart"})
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    charge = sdk.v1.charges.retrieve(response.json()["latest_charge"])
    assert charge.payment_method_details.konbini.store.chain == "seicomart"
    again = http.post(f"/_emulator/payment_intents/{paid.id}/pay")
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"
    expiring = sdk.v1.payment_intents.create(params=konbini_params("fill_never@test.com"))
    expired = http.post(f"/_emulator/payment_intents/{expiring.id}/expire").json()
    assert expired["status"] == "requires_payment_method"


def test_reconfirming_issues_a_new_voucher_and_voids_the_old(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=konbini_params("expire_with_delay@test.com"))
    old_url = pi.next_action.konbini_display_details.hosted_voucher_url
    again = sdk.v1.payment_intents.confirm(pi.id, params={"payment_method_data": {
        "type": "konbini", "billing_details": {"name": "Hanako", "email": "later@test.com"}}})
    assert again.next_action.konbini_display_details.hosted_voucher_url != old_url
    emulator.advance(180)  # the old voucher's expiry is void; the new one pays at 3 minutes
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "succeeded"


@pytest.mark.parametrize("amount, code", [(119, "amount_too_small"),
                                          (300_001, "amount_too_large")])
def test_konbini_amount_limits(sdk: stripe.StripeClient, emulator: Emulator, amount: int,
                               code: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.create(params=konbini_params(amount=amount))
    assert (caught.value.code, caught.value.param) == (code, "amount")
    assert emulator.events() == []  # refused before anything was created
    for ok in (120, 300_000):
        assert sdk.v1.payment_intents.create(params=konbini_params(amount=ok)).status == \
            "requires_action"


@pytest.mark.parametrize("options, param", [
    ({"expires_after_days": 61}, "expires_after_days"),
    ({"expires_after_days": 2, "expires_at": 4102444800}, "expires_at"),
    ({"product_description": "x" * 23}, "product_description"),
    ({"confirmation_number": "00000000000"}, "confirmation_number"),
    ({"colour": "red"}, "colour"),
])
def test_konbini_option_checks(sdk: stripe.StripeClient, options: dict[str, object],
                               param: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.create(params=konbini_params(**options))
    assert caught.value.param == f"payment_method_options[konbini][{param}]"


def test_konbini_expires_at_option_sets_the_deadline(sdk: stripe.StripeClient,
                                                     emulator: Emulator) -> None:
    at = emulator.now() + 7200
    pi = sdk.v1.payment_intents.create(params=konbini_params(expires_at=at))
    assert pi.next_action.konbini_display_details.expires_at == at
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.payment_intents.create(params=konbini_params(expires_at=emulator.now() + 60))


def test_konbini_needs_jpy_and_the_buyer_email(sdk: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.create(params={**konbini_params(), "currency": "usd"})
    assert caught.value.param == "currency"
    params = konbini_params()
    del params["payment_method_data"]["billing_details"]["email"]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.create(params=params)
    assert caught.value.param == "payment_method_data[billing_details][email]"


def test_create_then_confirm_and_cancel(sdk: stripe.StripeClient, emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params={"amount": 2000, "currency": "jpy",
                                               "allowed_payment_method_types": ["card", "konbini"],
                                               "metadata": {"order": "o_1"}})
    assert pi.status == "requires_payment_method" and pi.metadata.to_dict() == {"order": "o_1"}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.confirm(pi.id)
    assert caught.value.param == "payment_method"
    konbini = {k: v for k, v in konbini_params().items()
               if k in ("payment_method_data", "payment_method_options")}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.confirm(pi.id, params={**konbini, "amount": 5})
    assert caught.value.code == "parameter_unknown"
    voucher = sdk.v1.payment_intents.confirm(pi.id, params=konbini)  # type: ignore[arg-type]
    assert voucher.status == "requires_action"
    canceled = sdk.v1.payment_intents.cancel(pi.id, params={
        "cancellation_reason": "requested_by_customer"})
    assert (canceled.status, canceled.next_action) == ("canceled", None)
    emulator.advance(600)  # the voided voucher pays nothing
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.cancel(pi.id)
    assert caught.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
