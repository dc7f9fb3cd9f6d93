"""The shop's part of the operator page, registered through the dashboard's public hook by the
shop's own factory: its tab (vouchers due today in Japan, refunds waiting, the fee chart), the
order on a payment's event page, and the page shown in Japan time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ichido.config import Settings
from ichido.dashboard.mount import Dashboard
from ichido.shop.app import create_shop
from ichido.shop.settings import ShopSettings
from tests.dashboard.conftest import TOKEN, deliver, login
from tests.shop.support import add_vouchers_and_a_waiting_refund
from tests.support import SECRET, make_event


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ICHIDO_DASHBOARD_TOKEN", f"alice:{TOKEN}")
    monkeypatch.delenv("ICHIDO_DASHBOARD_TIMEZONE", raising=False)
    shop = create_shop(Settings(database_url=f"sqlite:///{tmp_path / 'shop.db'}",
                                webhook_secrets=(SECRET,)),
                       ShopSettings(stripe_api_key="sk_test_dashboard",
                                    mail_dir=str(tmp_path / "mail")), workers=0)
    shop.app.install(Dashboard())
    shop.fee_report = lambda: [  # what Stripe's balance transactions would say
        {"method": "card", "gross": 120_000, "fees": 4_320, "max_share": 0.2},
        {"method": "konbini", "gross": 1_800, "fees": 1_090, "max_share": 0.2}]
    yield shop
    shop.app.close()


def test_the_shop_registers_its_tab_in_japan_time(shop) -> None:
    with TestClient(shop.app, base_url="http://testserver") as client:
        add_vouchers_and_a_waiting_refund(shop.app.database)
        login(client)
        assert 'href="/dashboard/panels/shop"' in client.get("/dashboard/").text
        page = client.get("/dashboard/panels/shop").text
        expiring = page[page.index('id="shop-expiring"'):page.index('id="shop-awaiting"')]
        assert "ord_today" in expiring and "ord_later" not in expiring
        assert "23:59:59 JST" in expiring and "¥1,800" in expiring
        assert "re_waiting" in page[page.index('id="shop-refunds"'):]
        assert "60.6%" in page and "¥1,090 / ¥1,800" in page


def test_the_operators_time_zone_wins_over_the_shops(shop,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICHIDO_DASHBOARD_TIMEZONE", "UTC")  # read when an app is built
    other = create_shop(shop.app.settings, shop.settings, workers=0)
    other.app.install(Dashboard())
    other.fee_report = shop.fee_report
    try:
        with TestClient(other.app, base_url="http://testserver") as client:
            add_vouchers_and_a_waiting_refund(other.app.database)
            login(client)
            page = client.get("/dashboard/panels/shop").text
            assert "14:59:59 UTC" in page and "JST" not in page
    finally:
        other.app.close()


def test_a_payments_event_page_shows_its_order(shop) -> None:
    with TestClient(shop.app, base_url="http://testserver") as client:
        deadline = add_vouchers_and_a_waiting_refund(shop.app.database)
        deliver(client, make_event("payment_intent.processing", id="evt_order_page",
                                   obj={"id": "pi_ord_today", "object": "payment_intent"}))
        login(client)
        page = client.get("/dashboard/events/evt_order_page").text
        order = page[page.index('id="order"'):]
        assert "ord_today" in order and "ライブチケット" in order and "konbini" in order
        assert time.strftime("%Y-%m-%d", time.gmtime(deadline + 9 * 3600)) in order


def test_the_tab_lists_orders_waiting_for_a_transfer_with_what_is_owed_and_paypay_ones(
        shop) -> None:
    """Issue 24: a bank transfer partly paid shows what is still owed, one not yet paid its
    whole amount; a PayPay order waits for its authorisation. Neither is a konbini voucher."""
    with TestClient(shop.app, base_url="http://testserver") as client:
        now = time.time()
        with shop.app.database.transaction() as tx:
            for order_id, method, status, owed in (
                    ("ord_part", "customer_balance", "partially_paid", 500),
                    ("ord_none", "customer_balance", "awaiting_payment", None),
                    ("ord_pp", "paypay", "awaiting_payment", None),
                    ("ord_paid", "customer_balance", "paid", 0)):
                tx.execute("INSERT INTO shop_orders (id, product_id, product_name, kind, quantity,"
                           " amount, payment_method, email, status, payment_intent,"
                           " amount_remaining, hold_until, created_at, updated_at) VALUES"
                           " (?, 'p1', 'ライブチケット', 'ticket', 1, 1500, ?, 'a@example.com',"
                           " ?, ?, ?, ?, ?, ?)",
                           (order_id, method, status, f"pi_{order_id}", owed, now + 86400, now, now))
        login(client)
        page = client.get("/dashboard/panels/shop").text
    transfers = page[page.index('id="shop-transfers"'):page.index('id="shop-paypay"')]
    paypay = page[page.index('id="shop-paypay"'):page.index('id="shop-refunds"')]
    awaiting = page[page.index('id="shop-awaiting"'):page.index('id="shop-transfers"')]
    assert "ord_part" in transfers and "¥500" in transfers and "ord_none" in transfers
    assert "ord_paid" not in transfers and "ord_pp" not in transfers
    assert "ord_pp" in paypay and "ord_none" not in paypay
    assert not any(o in awaiting for o in ("ord_part", "ord_none", "ord_pp"))
