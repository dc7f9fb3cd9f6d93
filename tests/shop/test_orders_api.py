"""The orders API over real HTTP (the shop served in-process, the emulator as its Stripe):
idempotent order placement, every refusal as JSON with its reason code, stock released when a
payment does not happen, refunds; and the CLI that reads the same orders (`ichido orders`,
`ichido fees report`)."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import httpx
import pytest

from ichido.shop.fees import load_pricing
from tests.shop.conftest import KEY, ShopWorld
from tests.support import cli_json, run_cli

CATALOG = """
[[products]]
id = "poster-a"
name = "Poster A (the last one)"
price = 2000
kind = "physical"
stock = 1
methods = ["card", "konbini"]

[[products]]
id = "poster-b"
name = "Poster B (the last one)"
price = 2000
kind = "physical"
stock = 1
methods = ["card", "konbini"]

[[products]]
id = "card-only-pass"
name = "Backstage pass"
price = 1000
kind = "video_ticket"
methods = ["card"]

[[products]]
id = "vip-box"
name = "VIP box seat"
price = 100000
kind = "video_ticket"
methods = ["card", "konbini"]
"""
BUYER = "buyer@example.com"


@pytest.fixture
def shop(make_world, sqlite_url: str) -> ShopWorld:
    """The shop with the catalogue above (stock of one), served in-process."""
    return make_world(sqlite_url, mode="thread", catalog_toml=CATALOG)


@pytest.fixture
def example_shop(make_world, sqlite_url: str) -> ShopWorld:
    """The shop with the packaged example catalogue."""
    return make_world(sqlite_url, mode="thread")


def order_count(world: ShopWorld) -> int:
    return world.query("SELECT count(*) FROM shop_orders")[0][0]


# -- idempotent placement -----------------------------------------------------------------------

def test_retrying_an_order_with_its_idempotency_key_returns_the_same_order_and_one_intent(
        shop: ShopWorld) -> None:
    """Also for the last item in stock: the retry is the same order, not "out of stock"."""
    key = str(uuid.uuid4())
    body = dict(product="poster-a", payment_method="konbini", email=BUYER)
    first = shop.order(key=key, **body)
    assert first.status_code == 201, first.text
    for _ in range(3):
        again = shop.order(key=key, **body)
        assert again.status_code == 201, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["payment_intent"] == first.json()["payment_intent"]
        assert again.json()["voucher"]["url"] == first.json()["voucher"]["url"]
    assert shop.at_stripe("payment_intents") == {first.json()["id"]: 1}
    assert order_count(shop) == 1
    other = shop.order(key=str(uuid.uuid4()), **body)
    assert other.status_code == 409 and other.json()["error"]["code"] == "out_of_stock"


def test_concurrent_retries_with_one_idempotency_key_make_one_order_and_one_intent(
        database_url: str, make_world, request: pytest.FixtureRequest) -> None:
    """Eight clients send the same order with the same key at the same instant, five times
    over: each time one order, one PaymentIntent, and every answer is that order."""
    world: ShopWorld = make_world(database_url, mode="thread")
    threads_per_round, rounds = 8, 5
    for round_ in range(rounds):
        key = str(uuid.uuid4())
        start = threading.Barrier(threads_per_round)
        answers: list[httpx.Response | BaseException] = []

        def place() -> None:
            with httpx.Client(base_url=world.url, timeout=30) as client:
                start.wait()
                try:
                    answers.append(client.post("/orders", headers={"Idempotency-Key": key},
                                               json={"product": "live-2026-12",
                                                     "payment_method": "card", "email": BUYER}))
                except BaseException as exc:  # noqa: BLE001 - reported below
                    answers.append(exc)

        threads = [threading.Thread(target=place) for _ in range(threads_per_round)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        statuses = sorted(a.status_code if isinstance(a, httpx.Response) else repr(a)
                          for a in answers)
        assert statuses == [201] * threads_per_round, \
            f"round {round_}: {statuses}: " + "; ".join(
                a.text[:200] for a in answers if isinstance(a, httpx.Response)
                and a.status_code != 201)
        ids = {a.json()["id"] for a in answers if isinstance(a, httpx.Response)}
        assert len(ids) == 1, f"round {round_}: several orders for one key: {ids}"
    payment_intents = world.at_stripe("payment_intents")
    assert len(payment_intents) == rounds and set(payment_intents.values()) == {1}, \
        payment_intents
    assert order_count(world) == rounds


def test_same_idempotency_key_with_other_parameters_is_refused(shop: ShopWorld) -> None:
    key = str(uuid.uuid4())
    first = shop.order(key=key, product="card-only-pass", payment_method="card", email=BUYER)
    assert first.status_code == 201, first.text
    for changed in ({"quantity": 2}, {"email": "someone@example.com"},
                    {"payment_method_id": "pm_card_mastercard"}):
        body = {"product": "card-only-pass", "payment_method": "card", "email": BUYER, **changed}
        response = shop.order(key=key, **body)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert shop.at_stripe("payment_intents") == {first.json()["id"]: 1}


def test_retrying_a_declined_order_with_its_key_answers_402_again(shop: ShopWorld) -> None:
    key = str(uuid.uuid4())
    body = dict(product="card-only-pass", payment_method="card", email=BUYER,
                payment_method_id="pm_card_chargeDeclined")
    first = shop.order(key=key, **body)
    assert first.status_code == 402, first.text
    again = shop.order(key=key, **body)
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "failed"
    assert again.status_code == 402


# -- refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, status, code", [
    ({"product": "no-such-thing", "payment_method": "card", "email": BUYER}, 404,
     "unknown_product"),
    ({"product": "card-only-pass", "payment_method": "konbini", "email": BUYER}, 422,
     "method_not_allowed"),
    ({"product": "vip-box", "quantity": 4, "payment_method": "konbini", "email": BUYER}, 422,
     "amount_out_of_range"),  # ¥400,000: konbini takes at most ¥300,000
    ({"product": "vip-box", "quantity": 0, "payment_method": "card", "email": BUYER}, 422,
     "invalid_quantity"),
    ({"product": "vip-box", "payment_method": "card", "email": "not-an-address"}, 422,
     "invalid_email"),
    *[({"product": "vip-box", "payment_method": "card", "email": email}, 422, "invalid_email")
      for email in ("fan@example.com\r\nBcc: all@example.com", "fan@example.com\n",
                    "fan\x00@example.com", "fan@example.com\u2028")],  # would end a header
    ({"payment_method": "card", "email": BUYER}, 422, "invalid_request"),
    ([1, 2, 3], 422, "invalid_request"),
])
def test_refused_order_is_json_with_its_reason_code_and_reaches_no_stripe(
        shop: ShopWorld, body: Any, status: int, code: str) -> None:
    response = shop.http.post("/orders", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    if code == "method_not_allowed":
        assert response.json()["error"]["allowed"] == ["card"]
    if code == "amount_out_of_range":
        assert response.json()["error"]["amount"] == 400_000
    assert shop.stripe_list("payment_intents") == [] and order_count(shop) == 0


def test_malformed_json_is_a_400_with_its_reason_code(shop: ShopWorld) -> None:
    for path in ("/orders", "/orders/ord_x/refund"):
        response = shop.http.post(path, content=b'{"product": "poster-a",',
                                  headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "malformed_json"
    assert order_count(shop) == 0


def test_an_oversized_order_body_is_a_413_with_its_reason_code_and_stores_nothing(
        shop: ShopWorld) -> None:
    """Declared too large, or streamed (chunked, no length) past the limit: refused alike."""
    limit = shop.shop.settings.order_max_body_bytes
    padded = json.dumps({"product": "poster-a", "payment_method": "card", "email": BUYER,
                         "note": "x" * limit}).encode()

    def chunks():
        for start in range(0, len(padded), 1024):
            yield padded[start:start + 1024]

    for content in (padded, chunks()):
        response = shop.http.post("/orders", content=content,
                                  headers={"Content-Type": "application/json"})
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "too_large"
        assert response.json()["error"]["limit"] == limit
    assert order_count(shop) == 0 and shop.stripe_list("payment_intents") == []
    within = shop.order(product="poster-a", payment_method="card", email=BUYER)
    assert within.status_code == 201, within.text


def test_out_of_stock_is_409_and_makes_no_payment_intent(shop: ShopWorld) -> None:
    sold = shop.placed(product="poster-a", payment_method="card", email=BUYER)
    response = shop.order(product="poster-a", payment_method="konbini", email=BUYER)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "out_of_stock"
    assert shop.at_stripe("payment_intents") == {sold["id"]: 1}


def test_fee_guard_refuses_konbini_for_the_300_yen_ticket_and_says_how_much(
        example_shop: ShopWorld) -> None:
    quote = load_pricing().quote(300, "konbini")
    response = example_shop.order(product="mv-premiere-300", payment_method="konbini",
                                  email=BUYER)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "fee_share_exceeded"
    assert error["fee"] == quote.fee == 231  # ¥220 + 3.6% of ¥300
    assert error["fee_share"] == pytest.approx(float(quote.fee_share)) and error["fee_share"] > 0.5
    # An answer, not only a refusal: the cheapest other method the ticket offers.
    assert (error["suggested_method"], error["suggested_fee"]) == ("paypay", 12)
    assert "paypay takes ¥12" in error["message"]
    assert example_shop.stripe_list("payment_intents") == []
    by_card = example_shop.order(product="mv-premiere-300", payment_method="card", email=BUYER)
    assert by_card.status_code == 201, by_card.text  # ¥11 of ¥300: within the limit


# -- stock comes back when the money does not ---------------------------------------------------

def test_expired_konbini_voucher_releases_the_stock(shop: ShopWorld) -> None:
    held = shop.placed(product="poster-a", payment_method="konbini", email=BUYER)
    refused = shop.order(product="poster-a", payment_method="card", email=BUYER)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "out_of_stock"
    shop.control(f"payment_intents/{held['payment_intent']}/expire")
    shop.wait_status(held["id"], "expired")
    again = shop.placed(product="poster-a", payment_method="card", email=BUYER)
    assert again["status"] == "paid" and again["shipment"] == {"status": "ready_to_ship"}
    sold_out = shop.order(product="poster-a", payment_method="card", email=BUYER)
    assert sold_out.status_code == 409, "the expired order gave its item back twice"


def test_declined_card_releases_the_stock(shop: ShopWorld) -> None:
    declined = shop.order(product="poster-b", payment_method="card", email=BUYER,
                          payment_method_id="pm_card_chargeDeclined")
    assert declined.status_code == 402, declined.text
    assert declined.json()["status"] == "failed" and declined.json()["shipment"] is None
    bought = shop.placed(product="poster-b", payment_method="card", email=BUYER)
    assert bought["status"] == "paid"
    shop.settle()  # the declined payment's webhooks, duplicates too, give nothing back again
    sold_out = shop.order(product="poster-b", payment_method="card", email=BUYER)
    assert sold_out.status_code == 409, sold_out.text


# -- refunds ------------------------------------------------------------------------------------

def test_refund_without_an_amount_refunds_the_rest(database_url: str, make_world,
                                                   request: pytest.FixtureRequest) -> None:
    world: ShopWorld = make_world(database_url, mode="thread")
    order = world.placed(product="live-2026-12", payment_method="card", email=BUYER)
    part = world.refund(order["id"], 500)
    assert part.status_code == 202, part.text
    rest = world.refund(order["id"])
    assert rest.status_code == 202, rest.text
    assert rest.json()["refund_request"]["amount"] == 1000
    final = world.wait_status(order["id"], "refunded")
    assert final["entitlement"]["revoked_at"] is not None
    assert sorted(r["amount"] for r in world.stripe_list("refunds")) == [500, 1000]


def test_refund_requests_are_checked_and_a_retry_with_its_key_refunds_once(
        shop: ShopWorld) -> None:
    unknown = shop.refund("ord_nope", 100)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_order"
    waiting = shop.placed(product="poster-a", payment_method="konbini", email=BUYER)
    unpaid = shop.refund(waiting["id"], 100)
    assert unpaid.status_code == 409 and unpaid.json()["error"]["code"] == "not_refundable"
    paid = shop.placed(product="card-only-pass", payment_method="card", email=BUYER)
    too_much = shop.refund(paid["id"], 1001)
    assert too_much.status_code == 422 and too_much.json()["error"]["code"] == "invalid_amount"
    not_yen = shop.http.post(f"/orders/{paid['id']}/refund", json={"amount": 1.5})
    assert not_yen.status_code == 422 and not_yen.json()["error"]["code"] == "invalid_amount"
    key = str(uuid.uuid4())
    first = shop.refund(paid["id"], 400, key=key)
    assert first.status_code == 202, first.text
    for _ in range(2):
        again = shop.refund(paid["id"], 400, key=key)
        assert again.status_code == 202
        assert again.json()["refund_request"] == first.json()["refund_request"]
    shop.wait_order(paid["id"], lambda o: [r["status"] for r in o["refunds"]] == ["succeeded"],
                    "the refund")
    shop.settle()
    assert shop.at_stripe("refunds") == {paid["id"]: 1}
    assert shop.get(paid["id"])["status"] == "partially_refunded"


def test_refund_retry_with_its_key_but_another_amount_is_refused(shop: ShopWorld) -> None:
    paid = shop.placed(product="card-only-pass", payment_method="card", email=BUYER)
    key = str(uuid.uuid4())
    assert shop.refund(paid["id"], 400, key=key).status_code == 202
    other = shop.refund(paid["id"], 1000, key=key)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_refund_that_failed_at_stripe_can_be_asked_for_again(shop: ShopWorld) -> None:
    konbini = shop.placed(product="vip-box", payment_method="konbini", email=BUYER)
    shop.control(f"payment_intents/{konbini['payment_intent']}/pay")
    shop.wait_status(konbini["id"], "paid")
    assert shop.refund(konbini["id"], 100_000).status_code == 202
    refund = shop.wait_order(konbini["id"], lambda o: [r["status"] for r in o["refunds"]]
                             == ["requires_action"], "the refund waiting for bank details")
    expired = shop.stripe.post(f"/v1/test_helpers/refunds/{refund['refunds'][0]['id']}/expire")
    assert expired.status_code == 200, expired.text
    shop.wait_order(konbini["id"], lambda o: [r["status"] for r in o["refunds"]] == ["failed"],
                    "the refund failed")
    again = shop.refund(konbini["id"], 100_000)
    assert again.status_code == 202, again.text


def test_unknown_order_is_a_404_with_its_reason_code(shop: ShopWorld) -> None:
    response = shop.http.get("/orders/ord_nope")
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_order"


# -- the CLI over the same orders ---------------------------------------------------------------

def test_orders_list_and_show_json_are_what_the_api_answers(shop: ShopWorld,
                                                            sqlite_url: str) -> None:
    card = shop.placed(product="card-only-pass", payment_method="card", email=BUYER)
    konbini = shop.placed(product="poster-a", payment_method="konbini", email=BUYER)
    shop.settle()
    listed = cli_json("orders", "list", database_url=sqlite_url)
    assert [row["id"] for row in listed] == [konbini["id"], card["id"]]  # newest first
    assert listed == [shop.get(konbini["id"]), shop.get(card["id"])]
    shown = cli_json("orders", "show", konbini["id"], database_url=sqlite_url)
    assert shown == shop.get(konbini["id"])
    assert shown["status"] == "awaiting_payment" and shown["voucher"]["url"]
    missing = run_cli("orders", "show", "ord_nope", "--json", database_url=sqlite_url)
    assert missing.returncode == 1


def test_fees_report_matches_the_quote_for_each_method(example_shop: ShopWorld) -> None:
    """After card and konbini sales (and a declined card, which costs nothing), the report
    from Stripe's balance transactions says what the pricing table predicts."""
    pricing = load_pricing()
    sales = {"card": [1500, 3500], "konbini": [1500]}
    example_shop.placed(product="live-2026-12", payment_method="card", email=BUYER)
    example_shop.placed(product="tour-tshirt", payment_method="card", email=BUYER)
    declined = example_shop.order(product="live-2026-12", payment_method="card", email=BUYER,
                                  payment_method_id="pm_card_chargeDeclined")
    assert declined.status_code == 402
    konbini = example_shop.placed(product="live-2026-12", payment_method="konbini", email=BUYER)
    example_shop.control(f"payment_intents/{konbini['payment_intent']}/pay")
    example_shop.wait_status(konbini["id"], "paid")
    done = run_cli("fees", "report", "--json", env={
        "STRIPE_API_KEY": KEY, "STRIPE_API_BASE": example_shop.emulator_url})
    assert done.returncode == 0, done.stderr
    rows = {row["method"]: row for row in json.loads(done.stdout)["methods"]}
    assert set(rows) == set(sales)
    for method, amounts in sales.items():
        fees = sum(pricing.quote(amount, method).fee for amount in amounts)
        gross = sum(amounts)
        row = rows[method]
        assert (row["count"], row["gross"], row["fees"], row["net"]) == (
            len(amounts), gross, fees, gross - fees), row
        assert row["fee_share"] == pytest.approx(fees / gross)
    assert rows["konbini"]["fees"] == 274  # ¥220 + 3.6% of ¥1,500
    # The dashboard's fee chart reads the same rows, with the fee guard's limit beside them.
    charted = {row["method"]: row for row in example_shop.shop.fee_report()}
    assert {m: (r["gross"], r["fees"]) for m, r in charted.items()} == {
        m: (r["gross"], r["fees"]) for m, r in rows.items()}
    assert all(row["max_share"] == 0.2 for row in charted.values())
