"""Stripe Checkout (payment mode) for card and konbini: the session's events and the
PaymentIntent's, in every order and duplicated, give one fulfilment; end to end through the
emulator's Checkout with the official SDK."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Any

import pytest

from ichido.db import Database
from ichido.shop import checkout, order_view, orders, refunds
from tests.shop.conftest import ShopWorld

BUYER = "buyer@example.com"
CATALOG = """
[[products]]
id = "poster"
name = "Poster"
price = 2000
kind = "physical"
stock = 3
methods = ["card", "konbini"]

[[products]]
id = "ticket"
name = "Online live"
price = 1500
kind = "video_ticket"
methods = ["card", "konbini"]

[[products]]
id = "cheap"
name = "Watch party"
price = 300
kind = "video_ticket"
methods = ["card", "konbini"]

[[products]]
id = "stream-monthly"
name = "Streaming pass"
price = 980
kind = "subscription"
interval = "month"
methods = ["card"]
"""


# -- the state machine, every order of events ---------------------------------------------------

def checkout_order(store: Database) -> str:
    order_id = f"ord_{random.getrandbits(64):x}"
    now = time.time()
    with store.transaction() as tx:
        tx.execute("INSERT INTO shop_stock (product_id, available) VALUES (?, 4)",
                   (f"prod_{order_id}",))  # 5, one reserved by this order
        tx.execute("INSERT INTO shop_orders (id, product_id, product_name, kind, quantity,"
                   " amount, payment_method, email, status, created_at, updated_at,"
                   " checkout_session) VALUES (?, ?, 'thing', 'physical', 1, 2000, 'checkout',"
                   " ?, 'created', ?, ?, ?)",
                   (order_id, f"prod_{order_id}", BUYER, now, now, f"cs_{order_id}"))
    return order_id


def session(order_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"cs_{order_id}", "object": "checkout.session", "payment_intent":
            f"pi_{order_id}", "client_reference_id": order_id,
            "metadata": {"order_id": order_id}, **fields}


def intent(order_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"pi_{order_id}", "object": "payment_intent", "status": status,
            "payment_method_types": ["konbini"], "payment_method": "pm_1",
            "metadata": {"order_id": order_id}, **fields}


VOUCHER = {"type": "konbini_display_details", "konbini_display_details": {
    "expires_at": 1_900_000_000, "hosted_voucher_url": "https://example.test/v/1",
    "stores": {"lawson": {"confirmation_number": "12345678901", "payment_code": "1"}}}}
EXPIRED = {"message": "expired", "payment_method": {"id": "pm_1", "type": "konbini"}}


def konbini_story(order_id: str, ends: str) -> list[tuple[str, dict[str, Any]]]:
    events = [("checkout.session.completed", session(order_id, payment_status="unpaid")),
              ("payment_intent.requires_action", intent(order_id, "requires_action",
                                                        next_action=VOUCHER))]
    if ends == "paid":
        return events + [("payment_intent.succeeded", intent(order_id, "succeeded")),
                         ("checkout.session.async_payment_succeeded",
                          session(order_id, payment_status="paid"))]
    return events + [("payment_intent.payment_failed", intent(
        order_id, "requires_payment_method", payment_method=None, last_payment_error=EXPIRED)),
        ("checkout.session.async_payment_failed", session(order_id, payment_status="unpaid"))]


def apply(store: Database, events: list[tuple[str, dict[str, Any]]]) -> None:
    for kind, obj in events:
        with store.transaction() as tx:
            if kind.startswith("checkout."):
                checkout.apply_session(tx, kind, obj)
            elif kind.startswith("charge."):
                orders.apply_charge(tx, obj)
            else:
                orders.apply_payment_intent(tx, obj)


def state(store: Database, order_id: str) -> dict[str, Any]:
    with store.reading() as tx:
        order = order_view.to_json(tx, order_id)
        mails = sorted(r[0].rsplit(":", 1)[1] for r in tx.execute(
            "SELECT key FROM ichido_outbox WHERE key LIKE ?", (f"mail:{order_id}:%",)))
        left = tx.execute("SELECT available FROM shop_stock WHERE product_id = ?",
                          (f"prod_{order_id}",)).fetchone()[0]
    assert order is not None
    return {"status": order["status"], "method": order["payment_method"], "mails": mails,
            "shipment": (order["shipment"] or {}).get("status"), "stock": left}


@pytest.mark.parametrize("ends, want", [
    ("paid", {"status": "paid", "method": "konbini", "shipment": "ready_to_ship", "stock": 4,
              "mails": ["paid", "voucher", "warehouse-ship"]}),
    ("expired", {"status": "expired", "method": "konbini", "shipment": None, "stock": 5,
                 "mails": ["voucher"]}),
])
def test_a_checkout_konbini_order_ends_the_same_whatever_comes_first(
        store: Database, ends: str, want: dict[str, Any]) -> None:
    rng = random.Random(ends)
    for ordering in itertools.permutations(range(4)):
        order_id = checkout_order(store)
        story = konbini_story(order_id, ends)
        events = [story[i] for i in ordering] + [rng.choice(story), rng.choice(story)]
        apply(store, events)
        assert state(store, order_id) == want, ordering


def test_completed_unpaid_fulfils_nothing_and_a_declined_card_on_the_page_moves_nothing(
        store: Database) -> None:
    order_id = checkout_order(store)
    apply(store, [("payment_intent.payment_failed", intent(
        order_id, "requires_payment_method", payment_method_types=["card"],
        last_payment_error={"message": "declined", "payment_method": {"id": "pm_0"}}))])
    assert state(store, order_id)["status"] == "created"  # the buyer may try again there
    apply(store, [("checkout.session.completed", session(order_id, payment_status="unpaid"))])
    after = state(store, order_id)
    assert (after["status"], after["shipment"], after["mails"]) == ("awaiting_payment", None, [])


def test_an_unfinished_session_that_expires_gives_the_stock_back_once(store: Database) -> None:
    order_id = checkout_order(store)
    expired = ("checkout.session.expired", session(order_id, payment_intent=None,
                                                   status="expired"))
    apply(store, [expired, expired])
    assert state(store, order_id) | {"mails": []} == {
        "status": "canceled", "method": "checkout", "shipment": None, "stock": 5, "mails": []}


def test_the_method_is_what_stripe_names_never_guessed_from_a_paid_session(
        store: Database) -> None:
    """A session paid at once says nothing of how, nor does a PaymentIntent that allowed card
    and konbini; the charge does (``payment_method_details.type``), in any order."""
    both = {"payment_method_types": ["card", "konbini"]}
    story = [("checkout.session.completed", "session"), ("payment_intent.succeeded", "intent"),
             ("charge.succeeded", "charge")]
    for ordering in itertools.permutations(story):
        order_id = checkout_order(store)
        objects = {"session": session(order_id, payment_status="paid"),
                   "intent": intent(order_id, "succeeded", **both),
                   "charge": {"id": f"ch_{order_id}", "object": "charge",  # the PI's metadata
                              "payment_intent": f"pi_{order_id}",
                              "metadata": {"order_id": order_id},
                              "payment_method_details": {"type": "card", "card": {}}}}
        events = [(kind, objects[name]) for kind, name in ordering]
        apply(store, events[:-1] if ordering[-1][1] == "charge" else events)
        if ordering[-1][1] == "charge":
            assert state(store, order_id)["method"] == "checkout"  # not named yet: not guessed
            apply(store, events[-1:])
        got = state(store, order_id)
        assert (got["status"], got["method"]) == ("paid", "card"), ordering


def test_a_refund_of_a_checkout_order_is_applied_like_any_other(store: Database) -> None:
    order_id = checkout_order(store)
    apply(store, [("checkout.session.completed", session(order_id, payment_status="paid")),
                  ("charge.succeeded", {"id": "ch_1", "payment_intent": f"pi_{order_id}",
                                        "payment_method_details": {"type": "card"}})])
    with store.transaction() as tx:
        refunds.apply_refund(tx, {"id": "re_1", "amount": 2000, "status": "succeeded",
                                  "payment_intent": f"pi_{order_id}", "created": 1})
    got = state(store, order_id)
    assert (got["status"], got["method"], got["shipment"]) == ("refunded", "card", "canceled")
    assert "refund-1" in got["mails"]


# -- end to end: the shop, the emulator's Checkout, the SDK ---------------------------------------

@pytest.fixture
def shop(make_world, sqlite_url: str) -> ShopWorld:
    return make_world(sqlite_url, mode="thread", catalog_toml=CATALOG)


def open_checkout(world: ShopWorld, **body: Any) -> dict[str, Any]:
    response = world.http.post("/checkout", json=body, headers={"Idempotency-Key": "ck-1"})
    assert response.status_code == 201, response.text
    return response.json()


def test_checkout_konbini_paid_late_is_fulfilled_once(shop: ShopWorld) -> None:
    order = open_checkout(shop, product="ticket", email=BUYER)
    assert order["status"] == "created" and order["checkout"]["url"]
    again = shop.http.post("/checkout", json={"product": "ticket", "email": BUYER},
                           headers={"Idempotency-Key": "ck-1"})
    assert again.json()["checkout"] == order["checkout"]  # one session per key
    sessions = shop.stripe_list("checkout/sessions")
    assert len(sessions) == 1 and sessions[0]["payment_method_types"] == ["card", "konbini"]
    shop.control(f"checkout_sessions/{order['checkout']['id']}/complete",
                 payment_method_type="konbini")
    waiting = shop.wait_order(order["id"], lambda o: o["status"] == "awaiting_payment"
                              and o["voucher"] is not None, "the voucher")
    assert waiting["entitlement"] is None and waiting["payment_method"] == "konbini"
    shop.control(f"payment_intents/{waiting['payment_intent']}/pay", store="familymart")
    paid = shop.wait_status(order["id"], "paid")
    shop.settle()
    assert paid["entitlement"]["revoked_at"] is None
    assert shop.mails(order["id"]) == ["paid", "voucher"]
    assert shop.query("SELECT count(*) FROM shop_entitlements WHERE order_id = ?",
                      (order["id"],))[0][0] == 1


def test_checkout_konbini_that_expires_releases_the_stock(shop: ShopWorld) -> None:
    order = open_checkout(shop, product="poster", email=BUYER, payment_methods=["konbini"])
    shop.control(f"checkout_sessions/{order['checkout']['id']}/complete",
                 payment_method_type="konbini")
    waiting = shop.wait_order(order["id"], lambda o: o["payment_intent"] is not None
                              and o["voucher"] is not None, "the voucher")
    shop.control(f"payment_intents/{waiting['payment_intent']}/expire")
    shop.wait_status(order["id"], "expired")
    shop.settle()
    assert shop.query("SELECT available FROM shop_stock WHERE product_id = 'poster'")[0][0] == 3
    assert shop.get(order["id"])["shipment"] is None and shop.mails(order["id"]) == ["voucher"]


def test_checkout_by_card_ships_once_and_a_session_left_open_gives_the_stock_back(
        shop: ShopWorld) -> None:
    card = open_checkout(shop, product="poster", email=BUYER)
    shop.control(f"checkout_sessions/{card['checkout']['id']}/complete",
                 payment_method_type="card")
    paid = shop.wait_status(card["id"], "paid")
    left = shop.http.post("/checkout", json={"product": "poster", "email": BUYER},
                          headers={"Idempotency-Key": "ck-2"}).json()
    expired = shop.stripe.post(f"/v1/checkout/sessions/{left['checkout']['id']}/expire")
    assert expired.status_code == 200, expired.text
    shop.wait_status(left["id"], "canceled")
    shop.settle()
    assert paid["payment_method"] == "card" and shop.get(card["id"])["shipment"] == {
        "status": "ready_to_ship"}
    assert shop.mails(card["id"]) == ["paid", "warehouse-ship"]
    assert shop.query("SELECT available FROM shop_stock WHERE product_id = 'poster'")[0][0] == 2


def test_the_fee_guard_leaves_konbini_out_of_a_cheap_checkout(shop: ShopWorld) -> None:
    order = open_checkout(shop, product="cheap", email=BUYER)
    session_obj = shop.stripe.get(f"/v1/checkout/sessions/{order['checkout']['id']}").json()
    assert session_obj["payment_method_types"] == ["card"]  # ¥231 of ¥300 by konbini: no
    asked = shop.http.post("/checkout", json={"product": "cheap", "email": BUYER,
                                              "payment_methods": ["konbini"]})
    assert asked.status_code == 422 and asked.json()["error"]["code"] == "fee_share_exceeded"


def test_a_subscription_plan_is_not_sold_as_an_order(shop: ShopWorld) -> None:
    for path, body in (("/orders", {"payment_method": "card"}), ("/checkout", {})):
        response = shop.http.post(path, json={"product": "stream-monthly", "email": BUYER,
                                              **body})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "subscription_plan"
    assert shop.stripe_list("payment_intents") == [] == shop.stripe_list("checkout/sessions")


def test_checkout_konbini_paid_late_with_the_shop_killed_twice_still_does_each_once(
        sqlite_url: str, make_world, tmp_path: Path) -> None:
    """The shop as a real process (duplicated, reordered webhooks): killed inside the payment
    event's transaction, then after the paid mail is written but before it is marked sent.
    Restarted each time, the Checkout order ends paid with one entitlement and one of each mail."""
    from tests.shop.conftest import CRASHING_APP
    from tests.shop.test_shop_e2e import Expect, check_exactly_once, died_by_sigkill, start_again

    markers = tmp_path / "crashed"
    markers.mkdir()
    world: ShopWorld = make_world(sqlite_url, app=CRASHING_APP, env={
        "ICHIDO_LEASE": "1s", "ICHIDO_TEST_CRASH_AT": "handler,mail",
        "ICHIDO_TEST_CRASH_DIR": str(markers)})
    order = open_checkout(world, product="live-2026-12", email="fan@example.com",
                          payment_methods=["konbini"])
    world.control(f"checkout_sessions/{order['checkout']['id']}/complete",
                  payment_method_type="konbini")
    waiting = world.wait_order(order["id"], lambda o: o["payment_intent"] is not None
                               and "voucher" in world.mails(o["id"]), "the voucher mail")
    assert waiting["status"] == "awaiting_payment" and waiting["entitlement"] is None
    world.control(f"payment_intents/{waiting['payment_intent']}/pay", store="seicomart")
    died_by_sigkill(world)  # inside the payment event, effects written, not committed
    start_again(world, may_die=True)
    died_by_sigkill(world)  # the paid mail written, its outbox row not yet marked sent
    assert (markers / "handler").exists() and (markers / "mail").exists()
    start_again(world)
    world.wait_status(order["id"], "paid")
    check_exactly_once(world, {"ticket": Expect("paid", entitlement="granted",
                                                mails=("voucher", "paid"),
                                                order_id=order["id"])})
