"""Three gaps of the shop, over real HTTP through the emulator (duplicated and reordered
webhooks): unpaid orders give their stock back, a konbini voucher that expired can be renewed,
and a refund that fails after the parcel was stopped ships it after all (or asks a person)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.shop.conftest import ShopWorld

CATALOG = """
[[products]]
id = "poster"
name = "Poster (the last one)"
price = 2000
kind = "physical"
stock = 1
methods = ["card", "konbini"]
"""
BUYER = "buyer@example.com"


@pytest.fixture
def shop(make_world, database_url: str) -> ShopWorld:
    return make_world(database_url, mode="thread", catalog_toml=CATALOG)


def stock_left(world: ShopWorld) -> int:
    return world.query("SELECT available FROM shop_stock WHERE product_id = 'poster'")[0][0]


# -- the reaper -----------------------------------------------------------------------------------

def test_an_order_stripe_never_answered_gives_its_stock_back_once(shop: ShopWorld) -> None:
    shop.emulator_server.stop()  # Stripe unreachable: the order stays `created`, stock held
    stuck = shop.order(key="never-again", product="poster", payment_method="card", email=BUYER)
    assert stuck.status_code == 502, stuck.text
    order_id = stuck.json()["error"]["order"]
    assert shop.get(order_id)["status"] == "created" and stock_left(shop) == 0
    ttl = shop.shop.settings.unpaid_order_ttl_seconds
    assert shop.shop.reap_unpaid(now=time.time() + ttl / 2) == 0  # not yet
    later = time.time() + ttl + 1
    results: list[int] = []
    start = threading.Barrier(2)

    def reap() -> None:
        start.wait()
        results.append(shop.shop.reap_unpaid(now=later))

    threads = [threading.Thread(target=reap) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]  # two reapers at once: one release
    assert shop.shop.reap_unpaid(now=later) == 0
    assert shop.get(order_id)["status"] == "abandoned" and stock_left(shop) == 1
    # The client coming back with its key finds the abandoned order; no payment is made.
    again = shop.order(key="never-again", product="poster", payment_method="card", email=BUYER)
    assert again.status_code == 201 and again.json()["status"] == "abandoned"
    assert stock_left(shop) == 1


# -- a renewed konbini voucher ----------------------------------------------------------------------

def test_an_expired_konbini_order_gets_a_new_voucher_and_is_paid_by_it(shop: ShopWorld) -> None:
    order = shop.placed(product="poster", payment_method="konbini", email=BUYER)
    first = order["voucher"]["url"]
    shop.control(f"payment_intents/{order['payment_intent']}/expire")
    shop.wait_status(order["id"], "expired")
    assert stock_left(shop) == 1
    renewed = shop.http.post(f"/orders/{order['id']}/voucher")
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["status"] == "awaiting_payment" and body["voucher"]["url"] != first
    assert body["payment_intent"] == order["payment_intent"] and stock_left(shop) == 0
    retried = shop.http.post(f"/orders/{order['id']}/voucher")  # a client retry: same voucher
    assert retried.status_code == 200 and retried.json()["voucher"] == body["voucher"]
    shop.control(f"payment_intents/{order['payment_intent']}/pay", store="ministop")
    paid = shop.wait_status(order["id"], "paid")
    shop.settle()
    assert shop.get(order["id"])["status"] == "paid" and paid["shipment"] == {
        "status": "ready_to_ship"}
    assert shop.mails(order["id"]) == ["paid", "voucher", "voucher-2", "warehouse-ship"]
    assert shop.at_stripe("payment_intents") == {order["id"]: 1} and stock_left(shop) == 0
    refused = shop.http.post(f"/orders/{order['id']}/voucher")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_renewable"


def test_a_voucher_is_not_renewed_when_the_item_was_sold_meanwhile(shop: ShopWorld) -> None:
    order = shop.placed(product="poster", payment_method="konbini", email=BUYER)
    shop.control(f"payment_intents/{order['payment_intent']}/expire")
    shop.wait_status(order["id"], "expired")
    shop.placed(product="poster", payment_method="card", email="other@example.com")
    refused = shop.http.post(f"/orders/{order['id']}/voucher")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "out_of_stock"
    assert shop.get(order["id"])["status"] == "expired"


# -- a refund that fails after the parcel was stopped -----------------------------------------------

def paid_konbini_then_refunded(shop: ShopWorld) -> tuple[dict, str]:
    order = shop.placed(product="poster", payment_method="konbini", email=BUYER)
    shop.control(f"payment_intents/{order['payment_intent']}/pay")
    shop.wait_status(order["id"], "paid")
    assert shop.refund(order["id"]).status_code == 202
    stopped = shop.wait_order(order["id"], lambda o: (o["shipment"] or {}).get("status")
                              == "canceled", "the parcel stopped")
    return order, stopped["refunds"][0]["id"]


def test_a_refund_that_fails_resumes_the_stopped_parcel(shop: ShopWorld) -> None:
    order, refund_id = paid_konbini_then_refunded(shop)
    assert stock_left(shop) == 1
    expired = shop.stripe.post(f"/v1/test_helpers/refunds/{refund_id}/expire")
    assert expired.status_code == 200, expired.text
    resumed = shop.wait_order(order["id"], lambda o: o["status"] == "paid", "the refund failed")
    shop.settle()
    assert resumed["shipment"] == {"status": "ready_to_ship"} and stock_left(shop) == 0
    assert shop.mails(order["id"]) == ["paid", "refund-1", "voucher", "warehouse-cancel",
                                       "warehouse-resume", "warehouse-ship"]


def test_a_refund_that_fails_after_the_item_was_sold_asks_a_person(shop: ShopWorld) -> None:
    order, refund_id = paid_konbini_then_refunded(shop)
    shop.placed(product="poster", payment_method="card", email="other@example.com")
    assert shop.stripe.post(f"/v1/test_helpers/refunds/{refund_id}/expire").status_code == 200
    flagged = shop.wait_order(order["id"], lambda o: o["status"] == "paid", "the refund failed")
    shop.settle()
    assert flagged["shipment"] == {"status": "needs_attention"} and stock_left(shop) == 0
    assert "warehouse-attention" in shop.mails(order["id"])
