"""PayPay through the official SDK: the redirect, its outcome, Stripe's limits, and refunds that
settle later (issue 24, item 1)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import stripe

from ichido.emulator import Emulator
from ichido.emulator.paypay import REFUND_DELAY
from tests.emulator.schemas import problems, require_reference

RETURN_URL = "https://shop.example/paypay/return"


def paypay_params(amount: int = 1200, **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "currency": "jpy", "allowed_payment_method_types": ["paypay"],
            "payment_method_data": {"type": "paypay"}, "confirm": True,
            "return_url": RETURN_URL, **extra}


def types_of(emulator: Emulator, object_id: str) -> list[str]:
    return [e["type"] for e in emulator.events() if e["data"]["object"]["id"] == object_id]


def paid(sdk: stripe.StripeClient, http: httpx.Client, amount: int = 1200) -> Any:
    pi = sdk.v1.payment_intents.create(params=paypay_params(amount))
    assert http.post(f"/_emulator/payment_intents/{pi.id}/authorize").status_code == 200
    return sdk.v1.payment_intents.retrieve(pi.id)


def test_the_buyer_is_redirected_and_authorises_on_the_test_page(
        sdk: stripe.StripeClient, http: httpx.Client, emulator: Emulator) -> None:
    require_reference()
    pi = sdk.v1.payment_intents.create(params=paypay_params(description="Live ticket"))
    assert pi.status == "requires_action"
    assert pi.payment_method_types == ["paypay"]
    action = pi.next_action
    assert action is not None and action.type == "redirect_to_url"
    assert action.redirect_to_url is not None
    assert action.redirect_to_url.return_url == RETURN_URL
    page = httpx.get(action.redirect_to_url.url)  # the buyer's browser: no key
    assert page.status_code == 200 and "¥1,200" in page.text
    back = httpx.post(action.redirect_to_url.url, data={"result": "succeed"})
    assert back.status_code == 303
    location = urlsplit(back.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL
    assert parse_qs(location.query) == {"payment_intent": [pi.id],
                                        "payment_intent_client_secret": [pi.client_secret],
                                        "redirect_status": ["succeeded"]}
    done = sdk.v1.payment_intents.retrieve(pi.id)
    assert done.status == "succeeded" and done.amount_received == 1200
    charge = sdk.v1.charges.retrieve(str(done.latest_charge))
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.type == "paypay"
    assert types_of(emulator, pi.id) == ["payment_intent.created",
                                         "payment_intent.requires_action",
                                         "payment_intent.succeeded"]
    assert types_of(emulator, charge.id) == ["charge.succeeded"]
    assert [p for e in emulator.events() for p in problems(e)] == []
    assert httpx.post(action.redirect_to_url.url, data={"result": "succeed"}).status_code == 400


def test_a_refused_authorisation_fails_the_attempt(sdk: stripe.StripeClient, http: httpx.Client,
                                                   emulator: Emulator) -> None:
    pi = sdk.v1.payment_intents.create(params=paypay_params())
    answer = http.post(f"/_emulator/payment_intents/{pi.id}/authorize",
                       data={"result": "fail"})
    assert answer.status_code == 200
    failed = sdk.v1.payment_intents.retrieve(pi.id)
    assert failed.status == "requires_payment_method" and failed.next_action is None
    assert failed.last_payment_error is not None
    assert failed.last_payment_error.code == "payment_intent_payment_attempt_failed"
    assert failed.last_payment_error.payment_method_type == "paypay"
    assert types_of(emulator, pi.id)[-1] == "payment_intent.payment_failed"
    again = sdk.v1.payment_intents.confirm(pi.id, params={
        "payment_method_data": {"type": "paypay"}, "return_url": RETURN_URL})
    assert again.status == "requires_action"  # a new attempt: a new redirect


@pytest.mark.parametrize(("change", "param", "code"), [
    ({"currency": "usd"}, "currency", "payment_intent_invalid_parameter"),
    ({"amount": 49}, "amount", "amount_too_small"),
    ({"capture_method": "manual"}, "capture_method", "payment_intent_invalid_parameter"),
    ({"setup_future_usage": "off_session"}, "setup_future_usage",
     "payment_intent_invalid_parameter"),
    ({"return_url": None}, "return_url", "parameter_missing"),
])
def test_stripes_limits_are_refused_and_nothing_is_stored(
        sdk: stripe.StripeClient, emulator: Emulator, change: dict[str, Any], param: str,
        code: str) -> None:
    params = {k: v for k, v in (paypay_params() | change).items() if v is not None}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.create(params=params)
    assert refused.value.code == code and refused.value.param == param
    assert sdk.v1.payment_intents.list().data == [] and emulator.events() == []
    at_the_limit = sdk.v1.payment_intents.create(params=paypay_params(amount=50))
    assert at_the_limit.status == "requires_action"  # the same payment, within the limits


def test_no_subscription_no_setup_and_no_older_api_version(sdk: stripe.StripeClient,
                                                            http: httpx.Client) -> None:
    customer = sdk.v1.customers.create(params={"email": "taro@test.com"})
    one_time = sdk.v1.payment_intents.create(params=paypay_params(customer=customer.id))
    assert one_time.status == "requires_action"  # PayPay takes one-time payments only
    price = sdk.v1.prices.create(params={"currency": "jpy", "unit_amount": 980,
                                         "recurring": {"interval": "month"},
                                         "product_data": {"name": "Streaming"}})
    with pytest.raises(stripe.InvalidRequestError) as subscription:
        sdk.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": price.id}],
            "collection_method": "send_invoice", "days_until_due": 3,
            "payment_settings": {"payment_method_types": ["paypay"]}})
    assert subscription.value.param == "payment_settings[payment_method_types]"
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.setup_intents.create(params={"allowed_payment_method_types": ["paypay"],
                                            "customer": customer.id})
    old = http.post("/v1/payment_intents", headers={"Stripe-Version": "2026-08-26.dahlia"},
                    data={"amount": "1200", "currency": "jpy", "confirm": "true",
                          "payment_method_types[]": "paypay",
                          "payment_method_data[type]": "paypay", "return_url": RETURN_URL})
    assert old.status_code == 400


def test_refunds_are_pending_then_succeed_or_fail_with_their_events(
        sdk: stripe.StripeClient, http: httpx.Client, emulator: Emulator) -> None:
    require_reference()
    pi = paid(sdk, http, 3000)
    charge_id = str(pi.latest_charge)
    partial = sdk.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})
    assert partial.status == "pending"
    assert sdk.v1.charges.retrieve(charge_id).amount_refunded == 1000
    emulator.advance(REFUND_DELAY // 2)
    assert sdk.v1.refunds.retrieve(partial.id).status == "pending"
    emulator.advance(REFUND_DELAY // 2)
    assert sdk.v1.refunds.retrieve(partial.id).status == "succeeded"
    assert types_of(emulator, partial.id) == ["refund.created", "refund.updated",
                                              "charge.refund.updated"]
    rest = sdk.v1.refunds.create(params={"payment_intent": pi.id})
    assert rest.amount == 2000 and rest.status == "pending"
    charge = sdk.v1.charges.retrieve(charge_id)
    assert charge.refunded and charge.amount_refunded == 3000
    assert http.post(f"/_emulator/refunds/{rest.id}/fail").status_code == 200
    failed = sdk.v1.refunds.retrieve(rest.id)
    assert failed.status == "failed" and failed.failure_balance_transaction
    charge = sdk.v1.charges.retrieve(charge_id)
    assert not charge.refunded and charge.amount_refunded == 1000
    assert types_of(emulator, rest.id) == ["refund.created", "refund.failed",
                                           "charge.refund.updated"]
    assert [e["type"] for e in emulator.events()
            if e["data"]["object"]["id"] == charge_id].count("charge.refunded") == 2
    emulator.advance(REFUND_DELAY)  # a failed refund stays failed
    assert sdk.v1.refunds.retrieve(rest.id).status == "failed"
    assert http.post(f"/_emulator/refunds/{rest.id}/fail").status_code == 400
    assert [p for e in emulator.events() for p in problems(e)] == []
