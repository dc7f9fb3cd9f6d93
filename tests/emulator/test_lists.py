"""Every list endpoint applies each filter it takes, or refuses it (400 ``parameter_unknown``):
none is taken and silently ignored, which would hand back everyone's objects."""

from __future__ import annotations

import httpx
import pytest

from ichido.emulator import Emulator
from ichido.emulator.routes import routes

LISTS = sorted(r.pattern.pattern.strip("^$") for r in routes(Emulator())
               if r.method == "GET" and r.pattern.pattern.startswith("^/v1/")
               and "(?P<" not in r.pattern.pattern)


def test_the_lists_are_found() -> None:
    assert "/v1/coupons" in LISTS and "/v1/subscriptions" in LISTS and len(LISTS) >= 20


@pytest.mark.parametrize("path", LISTS)
def test_a_list_refuses_a_filter_it_does_not_apply(http: httpx.Client, path: str) -> None:
    answer = http.get(path, params={"colour": "red"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "parameter_unknown"
    assert answer.json()["error"]["param"] == "colour"


def test_subscriptions_filter_on_price_and_invoices_on_created(http: httpx.Client) -> None:
    """Both were taken and ignored before: every subscription, every invoice came back."""
    customer = http.post("/v1/customers", data={"payment_method": "pm_card_visa"}).json()
    prices = [http.post("/v1/prices", data={
        "currency": "jpy", "unit_amount": "500", "product_data[name]": f"plan {n}",
        "recurring[interval]": "month"}).json() for n in (1, 2)]
    subs = [http.post("/v1/subscriptions", data={"customer": customer["id"],
                                                 "items[0][price]": price["id"]}).json()
            for price in prices]
    listed = http.get("/v1/subscriptions", params={"price": prices[1]["id"]}).json()["data"]
    assert [s["id"] for s in listed] == [subs[1]["id"]]
    future = subs[1]["created"] + 3600
    assert http.get("/v1/invoices", params={"created[gte]": future}).json()["data"] == []
    assert len(http.get("/v1/invoices", params={"created[lt]": future}).json()["data"]) == 2


def test_a_boolean_filter_matches_the_field(http: httpx.Client) -> None:
    product = http.post("/v1/products", data={"name": "p"}).json()
    http.post("/v1/plans", data={"currency": "usd", "interval": "month", "amount": "2000",
                                 "product": product["id"], "active": "false"})
    active = http.post("/v1/plans", data={"currency": "usd", "interval": "month",
                                          "amount": "1000", "product": product["id"]}).json()
    listed = http.get("/v1/plans", params={"active": "true"}).json()["data"]
    assert [p["id"] for p in listed] == [active["id"]]


def test_a_sessions_line_items_page(http: httpx.Client) -> None:
    """``limit`` and the cursors were taken and ignored here: every line came back."""
    prices = [http.post("/v1/prices", data={"currency": "jpy", "unit_amount": str(500 * n),
                                            "product_data[name]": f"item {n}"}).json()
              for n in (1, 2, 3)]
    data = {"mode": "payment", "success_url": "https://example.com/ok",
            **{f"line_items[{i}][{k}]": v for i, p in enumerate(prices)
               for k, v in (("price", p["id"]), ("quantity", "1"))}}
    session = http.post("/v1/checkout/sessions", data=data).json()
    url = f"/v1/checkout/sessions/{session['id']}/line_items"
    first = http.get(url, params={"limit": 2}).json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    rest = http.get(url, params={"starting_after": first["data"][-1]["id"]}).json()
    assert len(rest["data"]) == 1 and rest["has_more"] is False
    assert {line["id"] for line in first["data"] + rest["data"]} == \
        {line["id"] for line in http.get(url).json()["data"]}


def test_customers_on_a_test_clock_are_listed_only_by_their_clock(http: httpx.Client) -> None:
    """Stripe: "The response will not include customers with test clocks if this parameter
    is not set" (list customers, ``test_clock``)."""
    clock = http.post("/v1/test_helpers/test_clocks", data={"frozen_time": "1577836800"}).json()
    plain = http.post("/v1/customers", data={"email": "a@example.com"}).json()
    clocked = http.post("/v1/customers", data={"email": "a@example.com",
                                               "test_clock": clock["id"]}).json()
    assert [c["id"] for c in http.get("/v1/customers").json()["data"]] == [plain["id"]]
    assert [c["id"] for c in http.get("/v1/customers", params={
        "email": "a@example.com"}).json()["data"]] == [plain["id"]]
    assert [c["id"] for c in http.get("/v1/customers", params={
        "test_clock": clock["id"]}).json()["data"]] == [clocked["id"]]


def test_subscriptions_status_ended_lists_the_canceled(http: httpx.Client) -> None:
    """``status=ended`` is Stripe's word for canceled and incomplete_expired together; it
    was read as a status of its own and matched nothing."""
    customer = http.post("/v1/customers", data={"payment_method": "pm_card_visa"}).json()
    price = http.post("/v1/prices", data={
        "currency": "jpy", "unit_amount": "500", "product_data[name]": "plan",
        "recurring[interval]": "month"}).json()
    subs = [http.post("/v1/subscriptions", data={"customer": customer["id"],
                                                 "items[0][price]": price["id"]}).json()
            for _ in (1, 2)]
    http.delete(f"/v1/subscriptions/{subs[0]['id']}")
    ended = http.get("/v1/subscriptions", params={"status": "ended"}).json()["data"]
    assert [s["id"] for s in ended] == [subs[0]["id"]]
    refused = http.get("/v1/subscriptions", params={"status": "finished"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "status"
