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
