"""A Checkout konbini order that expires, with the shop (a real process) killed from outside
while the expiry's events are in flight (duplicated, reordered): the order ends expired, its
stock comes back once, and only the voucher was mailed. (Paid late with kills:
test_checkout.py.)"""

from __future__ import annotations

from typing import Any

from tests.shop.conftest import CRASHING_APP, ShopWorld
from tests.shop.test_shop_e2e import SHIRT, SHIRT_STOCK, Expect, check_exactly_once, start_again


def test_checkout_konbini_that_expires_with_the_shop_killed_releases_the_stock_once(
        sqlite_url: str, make_world: Any) -> None:
    world: ShopWorld = make_world(sqlite_url, app=CRASHING_APP, env={"ICHIDO_LEASE": "1s"})
    assert world.process is not None
    response = world.http.post("/checkout", json={
        "product": SHIRT, "email": "late@example.com", "payment_methods": ["konbini"]},
        headers={"Idempotency-Key": "ck-expire"})
    assert response.status_code == 201, response.text
    order = response.json()
    world.control(f"checkout_sessions/{order['checkout']['id']}/complete",
                  payment_method_type="konbini")
    waiting = world.wait_order(order["id"], lambda o: o["voucher"] is not None
                               and o["payment_method"] == "konbini", "the voucher")
    assert world.query("SELECT available FROM shop_stock WHERE product_id = ?",
                       (SHIRT,)) == [(SHIRT_STOCK - 1,)]
    world.control(f"payment_intents/{waiting['payment_intent']}/expire")
    world.process.kill()  # the expiry's events are on their way, some twice
    start_again(world)
    world.wait_status(order["id"], "expired")
    check_exactly_once(world, {"expired": Expect("expired", mails=("voucher",),
                                                 order_id=order["id"])})
    assert world.query("SELECT available FROM shop_stock WHERE product_id = ?",
                       (SHIRT,)) == [(SHIRT_STOCK,)]
    assert world.get(order["id"])["shipment"] is None
