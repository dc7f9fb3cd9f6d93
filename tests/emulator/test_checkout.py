"""Checkout Sessions in payment mode through the SDK, and the hosted page the test buyer uses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from ichido.emulator import Emulator
from tests.emulator.schemas import event_types, problems


def session(sdk: stripe.StripeClient, types: tuple[str, ...] = ("card", "konbini"),
            **extra: Any) -> Any:
    key = extra.pop("key", None) or f"cs-{types}-{extra}"
    return sdk.v1.checkout.sessions.create(params={
        "mode": "payment", "allowed_payment_method_types": list(types),
        "line_items": [{"price_data": {"currency": "jpy", "unit_amount": 1500,
                                       "product_data": {"name": "Live ticket"}},
                        "quantity": 2}],
        "success_url": "https://shop.test/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.test/cart", "metadata": {"order": "o_1"}, **extra},
        options={"idempotency_key": key})


def checkout_events(emulator: Emulator) -> list[tuple[str, str]]:
    return [(e["type"], e["data"]["object"]["payment_status"]) for e in emulator.events()
            if e["type"].startswith("checkout.session.")]


def test_card_on_the_hosted_page_completes_paid_and_redirects(sdk: stripe.StripeClient,
                                                             emulator: Emulator) -> None:
    created = session(sdk)
    assert (created.status, created.payment_status, created.amount_total) == \
        ("open", "unpaid", 3000)
    page = httpx.get(created.url)
    assert page.status_code == 200 and "Live ticket" in page.text and "¥3,000" in page.text
    answer = httpx.post(created.url, data={"payment_method_type": "card",
                                           "email": "hanako@test.com"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"https://shop.test/done?session={created.id}"
    done = sdk.v1.checkout.sessions.retrieve(created.id, params={"expand": ["payment_intent"]})
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.payment_intent.status == "succeeded" and done.payment_intent.amount == 3000
    assert done.customer_details.email == "hanako@test.com"
    assert checkout_events(emulator) == [("checkout.session.completed", "paid")]


def test_konbini_completes_unpaid_then_succeeds_when_the_voucher_is_paid(
        sdk: stripe.StripeClient, emulator: Emulator, http: httpx.Client) -> None:
    created = session(sdk)
    page = httpx.post(created.url, data={"payment_method_type": "konbini",
                                         "email": "fill_never@test.com", "name": "Jiro"})
    assert page.status_code == 200 and "お支払い期限" in page.text  # the voucher
    done = sdk.v1.checkout.sessions.retrieve(created.id, params={"expand": ["payment_intent"]})
    assert (done.status, done.payment_status) == ("complete", "unpaid")
    assert done.payment_intent.next_action.konbini_display_details.hosted_voucher_url
    assert checkout_events(emulator) == [("checkout.session.completed", "unpaid")]
    http.post(f"/_emulator/payment_intents/{done.payment_intent.id}/pay",
              data={"store": "seicomart"})
    assert checkout_events(emulator)[-1] == ("checkout.session.async_payment_succeeded", "paid")
    assert sdk.v1.checkout.sessions.retrieve(created.id).payment_status == "paid"


def test_an_expired_voucher_is_an_async_failure(sdk: stripe.StripeClient,
                                                emulator: Emulator, http: httpx.Client) -> None:
    created = session(sdk, ("konbini",),
                      payment_method_options={"konbini": {"expires_after_days": 2}})
    response = http.post(f"/_emulator/checkout_sessions/{created.id}/complete",
                         data={"payment_method_type": "konbini",
                               "email": "fill_never@test.com"})
    assert response.status_code == 200 and response.json()["payment_status"] == "unpaid"
    pi = sdk.v1.payment_intents.retrieve(response.json()["payment_intent"])
    emulator.advance(pi.next_action.konbini_display_details.expires_at - emulator.now())
    assert checkout_events(emulator) == [("checkout.session.completed", "unpaid"),
                                         ("checkout.session.async_payment_failed", "unpaid")]
    assert 2 * 86400 <= pi.next_action.konbini_display_details.expires_at - pi.created \
        <= 3 * 86400


def test_an_abandoned_session_expires(sdk: stripe.StripeClient, emulator: Emulator) -> None:
    created = session(sdk, expires_at=emulator.now() + 3600)
    emulator.advance(3600)
    assert sdk.v1.checkout.sessions.retrieve(created.id).status == "expired"
    assert checkout_events(emulator) == [("checkout.session.expired", "unpaid")]
    assert httpx.post(created.url, data={"payment_method_type": "card"}).status_code == 400
    other = session(sdk, ("card",))
    assert sdk.v1.checkout.sessions.expire(other.id).status == "expired"


def test_a_declined_card_leaves_the_session_open(sdk: stripe.StripeClient,
                                                 emulator: Emulator, http: httpx.Client) -> None:
    created = session(sdk, ("card",))
    declined = http.post(f"/_emulator/checkout_sessions/{created.id}/complete",
                         data={"payment_method_type": "card", "card": "pm_card_chargeDeclined"})
    assert declined.json()["status"] == "open" and checkout_events(emulator) == []
    paid = http.post(f"/_emulator/checkout_sessions/{created.id}/complete",
                     data={"payment_method_type": "card"})
    assert paid.json()["payment_status"] == "paid"


@pytest.mark.parametrize("params, param", [
    ({"mode": "subscription"}, "mode"),
    ({"allowed_payment_method_types": ["alipay"]}, "allowed_payment_method_types"),
    ({"line_items": [{"price": "price_nope"}]}, "line_items[0][price]"),
    ({"line_items": [{"price_data": {"currency": "jpy", "unit_amount": 10**20,
                                     "product_data": {"name": "x"}}}]}, "unit_amount"),
    ({"allowed_payment_method_types": ["konbini"], "line_items": [{"price_data": {
        "currency": "jpy", "unit_amount": 100, "product_data": {"name": "x"}}}]}, "amount"),
])
def test_bad_sessions_are_refused(sdk: stripe.StripeClient, emulator: Emulator,
                                  params: dict[str, Any], param: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        session(sdk, **params)
    assert caught.value.param == param
    assert not emulator.store.objects["checkout.session"]
    assert not emulator.store.objects["price"]  # price_data made nothing either


def test_sessions_line_items_and_events_match_stripes_schemas(sdk: stripe.StripeClient,
                                                              emulator: Emulator,
                                                              http: httpx.Client) -> None:
    for kind, email in (("card", "a@test.com"), ("konbini", "b@test.com"),
                        ("konbini", "fill_never@test.com")):
        created = session(sdk, key=f"{kind}{email}")
        http.post(f"/_emulator/checkout_sessions/{created.id}/complete",
                  data={"payment_method_type": kind, "email": email})
    session(sdk, key="left open")
    emulator.advance(4 * 86400)  # the session expires, so does the unpaid voucher
    lines = sdk.v1.checkout.sessions.line_items.list(created.id)
    assert lines.data[0].quantity == 2 and lines.data[0].amount_total == 3000
    found = [p for obj in emulator.store.objects["checkout.session"].values()
             for p in problems(obj)]
    found += [p for event in emulator.events() for p in problems(event)]
    found += [p for item in emulator.store.private[created.id]["lines"]
              for p in problems(item, "item")]
    assert found == []
    assert {e["type"] for e in emulator.events()} <= event_types()
    assert {"checkout.session.completed", "checkout.session.async_payment_succeeded",
            "checkout.session.async_payment_failed", "checkout.session.expired"} <= \
        {e["type"] for e in emulator.events()}
