"""PayPay orders over the shop's HTTP API, with the official SDK's local Stripe (the emulator)
behind it (issue 24, item 1): the buyer gets the redirect URL, the shop grants or ships once
on success, gives the stock back on a refused or abandoned authorisation, and a plan asked
for with PayPay is refused with its reason code."""

from __future__ import annotations

import time

import pytest

from tests.shop.conftest import ShopWorld

CATALOG = """
[[products]]
id = "premiere"
name = "Music video premiere"
price = 300
kind = "video_ticket"
methods = ["card", "konbini", "paypay"]

[[products]]
id = "poster"
name = "Poster (the last one)"
price = 2000
kind = "physical"
stock = 1
methods = ["card", "paypay"]

[[products]]
id = "stream-monthly"
name = "Streaming pass, monthly"
price = 980
kind = "subscription"
interval = "month"
methods = ["card"]
"""
BUYER = "fan@example.com"


@pytest.fixture
def shop(database_url: str, make_world) -> ShopWorld:
    """The shop on every backend (``database_url`` first: it stops before the schema goes)."""
    return make_world(database_url, mode="thread", catalog_toml=CATALOG)


def stock_left(world: ShopWorld) -> int:
    return world.query("SELECT available FROM shop_stock WHERE product_id = 'poster'")[0][0]


def test_a_paypay_order_answers_the_redirect_and_grants_once_when_authorised(
        shop: ShopWorld) -> None:
    """The ¥300 ticket konbini cannot sell (fee 77%) sells by PayPay, the method the refusal
    named."""
    refused = shop.order(product="premiere", payment_method="konbini", email=BUYER)
    assert refused.status_code == 422 and refused.json()["error"]["suggested_method"] == "paypay"
    order = shop.placed(product="premiere", payment_method="paypay", email=BUYER)
    assert order["status"] == "awaiting_payment" and order["payment_method"] == "paypay"
    assert order["redirect_url"] and order["redirect_url"].startswith(shop.emulator_url)
    assert order["entitlement"] is None and shop.mails(order["id"]) == []
    assert order["hold_until"] is not None
    pi = shop.stripe.get(f"/v1/payment_intents/{order['payment_intent']}").json()
    assert pi["payment_method_types"] == ["paypay"] and pi["next_action"]["type"] == \
        "redirect_to_url"
    shop.control(f"payment_intents/{order['payment_intent']}/authorize", result="succeed")
    paid = shop.wait_status(order["id"], "paid")
    assert paid["entitlement"]["granted_at"] and paid["entitlement"]["revoked_at"] is None
    shop.settle()
    assert shop.mails(order["id"]) == ["paid"]
    assert shop.at_stripe("payment_intents")[order["id"]] == 1
    assert shop.query("SELECT count(*) FROM shop_entitlements WHERE order_id = ?",
                      (order["id"],)) == [(1,)]


def test_a_refused_authorisation_fails_the_order_and_gives_the_stock_back(
        shop: ShopWorld) -> None:
    order = shop.placed(product="poster", payment_method="paypay", email=BUYER)
    assert stock_left(shop) == 0
    shop.control(f"payment_intents/{order['payment_intent']}/authorize", result="fail")
    failed = shop.wait_status(order["id"], "failed")
    assert failed["shipment"] is None and stock_left(shop) == 1
    again = shop.placed(product="poster", payment_method="card", email=BUYER)
    assert again["status"] == "paid" and again["shipment"] == {"status": "ready_to_ship"}


def test_an_abandoned_authorisation_is_canceled_at_stripe_and_releases_the_stock_once(
        shop: ShopWorld) -> None:
    order = shop.placed(product="poster", payment_method="paypay", email=BUYER)
    assert shop.shop.reap_unpaid() == 0  # within its hold: nothing happens
    later = time.time() + shop.shop.settings.paypay_hold_seconds + 60
    assert shop.shop.reap_unpaid(now=later) == 1
    assert shop.shop.reap_unpaid(now=later) == 0  # queued once
    abandoned = shop.wait_status(order["id"], "abandoned")
    pi = shop.stripe.get(f"/v1/payment_intents/{order['payment_intent']}").json()
    assert (pi["status"], pi["cancellation_reason"]) == ("canceled", "abandoned")
    shop.settle()
    assert stock_left(shop) == 1 and abandoned["shipment"] is None
    assert shop.outbox()[f"ichido-cancel-{order['id']}"][1] == "processed"


def test_a_buyer_who_authorises_before_the_cancellation_keeps_the_order(shop: ShopWorld) -> None:
    order = shop.placed(product="poster", payment_method="paypay", email=BUYER)
    shop.control(f"payment_intents/{order['payment_intent']}/authorize", result="succeed")
    shop.wait_status(order["id"], "paid")
    later = time.time() + shop.shop.settings.paypay_hold_seconds + 60
    assert shop.shop.reap_unpaid(now=later) == 0  # paid: nothing is held any more
    shop.settle()
    assert shop.get(order["id"])["shipment"] == {"status": "ready_to_ship"}
    assert stock_left(shop) == 0


def test_a_subscription_asked_with_paypay_is_refused_with_its_reason(shop: ShopWorld) -> None:
    response = shop.http.post("/subscriptions", json={
        "plan": "stream-monthly", "payment_method": "paypay", "email": BUYER})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "not_for_subscriptions" and error["allowed"] == ["card", "konbini"]
    assert shop.stripe_list("subscriptions") == [] == shop.stripe_list("customers")


def test_checkout_offers_only_the_methods_within_the_fee_limit(shop: ShopWorld) -> None:
    """¥300: card (¥11) and PayPay (¥12) are offered, konbini (¥231) is not."""
    response = shop.http.post("/checkout", json={"product": "premiere", "email": BUYER},
                              headers={"Idempotency-Key": "ck-premiere"})
    assert response.status_code == 201, response.text
    session = shop.stripe.get(f"/v1/checkout/sessions/{response.json()['checkout']['id']}")
    assert session.json()["payment_method_types"] == ["card", "paypay"]
