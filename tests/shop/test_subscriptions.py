"""Streaming subscriptions end to end through the emulator's Billing with the official SDK: a
card plan over three renewals (one failing, then recovering), a konbini plan whose second
invoice is never paid. (Every order of a lifecycle's events: test_access.py.)"""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest

from tests.shop.conftest import ShopWorld

BUYER = "viewer@example.com"


# -- end to end: the shop, the emulator's Billing, the SDK ---------------------------------------

PLANS = """
[[products]]
id = "stream-monthly"
name = "Streaming pass, monthly"
price = 980
kind = "subscription"
interval = "month"
methods = ["card"]

[[products]]
id = "stream-konbini"
name = "Streaming pass, monthly (konbini)"
price = 1980
kind = "subscription"
interval = "month"
methods = ["konbini"]

[[products]]
id = "stream-lite"
name = "Streaming lite"
price = 300
kind = "subscription"
interval = "month"
methods = ["card", "konbini"]
"""


@pytest.fixture
def shop(make_world, sqlite_url: str) -> ShopWorld:
    return make_world(sqlite_url, mode="thread", catalog_toml=PLANS)


def subscribe(world: ShopWorld, key: str, **body: Any) -> dict[str, Any]:
    response = world.http.post("/subscriptions", json={"email": BUYER} | body,
                               headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.text
    return response.json()


def shown(world: ShopWorld, sub_id: str) -> dict[str, Any]:
    response = world.http.get(f"/subscriptions/{sub_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_sub(world: ShopWorld, sub_id: str, check: Any, what: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ready() -> bool:
        found.update(shown(world, sub_id))
        return bool(check(found))

    from tests.support import wait_until
    wait_until(ready, timeout=60, interval=0.05, message=f"{sub_id}: {what} (last: {found})")
    return dict(found)


def to_next_period(world: ShopWorld, stripe_id: str) -> None:
    """Move Stripe's clock past the period's end and the renewal invoice's finalization (since
    basil a subscription's period is on its items)."""
    sub = world.stripe.get(f"/v1/subscriptions/{stripe_id}").json()
    end = sub["items"]["data"][0]["current_period_end"]
    now = world.control("clock/advance", seconds=0)["now"]
    world.control("clock/advance", seconds=end - now + 2 * 3600)


def test_a_card_plan_renews_three_times_one_failing_then_recovering(shop: ShopWorld) -> None:
    sub = subscribe(shop, "s-1", plan="stream-monthly", payment_method="card")
    again = subscribe(shop, "s-1", plan="stream-monthly", payment_method="card")
    assert again["id"] == sub["id"] and len(shop.stripe_list("subscriptions")) == 1
    stripe_id = sub["stripe_subscription"]
    first = wait_sub(shop, sub["id"], lambda s: s["entitlement"] and s["status"] == "active",
                     "access granted")
    assert first["current_period_end"].endswith("+00:00")
    to_next_period(shop, stripe_id)  # renewal 1: paid
    wait_sub(shop, sub["id"], lambda s: [i["status"] for i in s["invoices"]] == ["paid"] * 2,
             "renewal 1 paid")
    shop.stripe.post(f"/v1/subscriptions/{stripe_id}",
                     data={"default_payment_method": "pm_card_chargeDeclined"})
    to_next_period(shop, stripe_id)  # renewal 2: declined
    failing = wait_sub(shop, sub["id"], lambda s: s["status"] == "past_due"
                       and len(s["invoices"]) == 3 and s["invoices"][-1]["status"] == "open",
                       "past due")
    assert failing["entitlement"]["revoked_at"] is None  # grace: still watching
    shop.control(f"invoices/{failing['invoices'][-1]['id']}/pay")  # the buyer fixes the card
    wait_sub(shop, sub["id"], lambda s: s["status"] == "active"
             and s["invoices"][-1]["status"] == "paid", "recovered")
    shop.stripe.post(f"/v1/subscriptions/{stripe_id}",
                     data={"default_payment_method": "pm_card_visa"})
    to_next_period(shop, stripe_id)  # renewal 3: paid
    wait_sub(shop, sub["id"], lambda s: len(s["invoices"]) == 4
             and s["invoices"][-1]["status"] == "paid", "renewal 3 paid")
    shop.stripe.delete(f"/v1/subscriptions/{stripe_id}")
    ended = wait_sub(shop, sub["id"], lambda s: s["status"] == "canceled"
                     and s["entitlement"]["revoked_at"], "revoked")
    shop.settle()
    assert shown(shop, sub["id"]) == ended
    assert [i["status"] for i in ended["invoices"]] == ["paid"] * 4
    assert all(i["voucher"] is None for i in ended["invoices"])
    assert shop.query("SELECT count(*) FROM shop_subscription_access")[0][0] == 1


def test_a_konbini_plan_whose_second_invoice_is_never_paid_loses_access(
        shop: ShopWorld) -> None:
    # Stripe's test e-mail "fill_never": no voucher pays by itself; the test pays the first.
    sub = subscribe(shop, "s-2", plan="stream-konbini", payment_method="konbini",
                    email="fill_never@example.com")
    stripe_id = sub["stripe_subscription"]
    opened = wait_sub(shop, sub["id"], lambda s: s["invoices"] and s["invoices"][0]["voucher"],
                      "the first invoice's voucher")
    assert opened["entitlement"] is None  # nothing paid yet
    shop.control(f"invoices/{opened['invoices'][0]['id']}/pay", store="lawson")
    wait_sub(shop, sub["id"], lambda s: s["entitlement"], "access granted")
    to_next_period(shop, stripe_id)
    second = wait_sub(shop, sub["id"], lambda s: len(s["invoices"]) == 2
                      and s["invoices"][1]["voucher"], "the second invoice's voucher")
    assert second["entitlement"]["revoked_at"] is None  # open, not yet due: kept
    shop.control(f"invoices/{second['invoices'][1]['id']}/lapse")
    shop.control("clock/advance", seconds=8 * 86400)  # past the overdue period: canceled
    ended = wait_sub(shop, sub["id"], lambda s: s["status"] == "canceled"
                     and s["entitlement"]["revoked_at"], "revoked")
    shop.settle()
    assert shown(shop, sub["id"]) == ended
    assert [i["amount"] for i in ended["invoices"]] == [1980, 1980]
    mails = sorted(p.name.split("--", 1)[1] for p in shop.mail_dir.glob(f"{sub['id']}--*.eml"))
    assert mails == sorted(["access-ended.eml", *(f"invoice-{i['id']}.eml"
                                                  for i in ended["invoices"])])
    first = ended["invoices"][0]
    letter = email.message_from_bytes(
        (shop.mail_dir / f"{sub['id']}--invoice-{first['id']}.eml").read_bytes(),
        policy=email.policy.default)
    text = letter.get_content()  # quoted-printable UTF-8, decoded as the buyer reads it
    assert "1,980円" in text and "お支払い期限: " in text and "まで" in text
    assert first["voucher"]["url"] in text


def test_a_plan_and_method_are_checked_before_stripe_is_asked(shop: ShopWorld) -> None:
    cheap = shop.http.post("/subscriptions", json={"plan": "stream-lite", "email": BUYER,
                                                   "payment_method": "konbini"})
    assert cheap.status_code == 422 and cheap.json()["error"]["code"] == "fee_share_exceeded"
    unknown = shop.http.get("/subscriptions/sub_nope")
    assert unknown.status_code == 404
    for address in ("fan@example.com\r\nBcc: all@example.com", "fan\x00@example.com"):
        header = shop.http.post("/subscriptions", json={"plan": "stream-lite", "email": address,
                                                        "payment_method": "card"})
        assert header.status_code == 422 and header.json()["error"]["code"] == "invalid_email"
    assert shop.stripe_list("subscriptions") == []
