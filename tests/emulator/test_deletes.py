"""Deletes (``DELETE /v1/customers|products|coupons|plans|invoices/{id}``, test clocks): the
object is gone (404 after), the answer is Stripe's ``{"id", "object", "deleted": true}``, the
``*.deleted`` event carries the object as it was, and a request undone after a delete puts the
object back, as every refused request leaves no trace."""

from __future__ import annotations

import httpx

from ichido.emulator import Emulator
from ichido.emulator.state import Store


def test_a_deleted_customer_is_gone_and_its_event_keeps_it(http: httpx.Client,
                                                           emulator: Emulator) -> None:
    customer = http.post("/v1/customers", data={"email": "a@example.com"}).json()
    gone = http.delete(f"/v1/customers/{customer['id']}")
    assert gone.json() == {"id": customer["id"], "object": "customer", "deleted": True}
    assert http.get(f"/v1/customers/{customer['id']}").status_code == 404
    event = next(e for e in emulator.events() if e["type"] == "customer.deleted")
    assert event["data"]["object"]["email"] == "a@example.com"
    assert http.delete(f"/v1/customers/{customer['id']}").status_code == 404


def test_a_product_with_prices_is_not_deleted(http: httpx.Client) -> None:
    price = http.post("/v1/prices", data={"currency": "jpy", "unit_amount": "500",
                                          "product_data[name]": "ticket"}).json()
    refused = http.delete(f"/v1/products/{price['product']}")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "product_has_prices"
    assert http.get(f"/v1/products/{price['product']}").status_code == 200


def test_an_undone_request_puts_a_deleted_object_back() -> None:
    store = Store()
    store.add({"id": "cus_x", "object": "customer", "email": "a@example.com"})
    store.begin()
    store.delete("customer", "cus_x")
    store.emit("customer.deleted", {"id": "cus_x", "object": "customer"})
    store.undo()
    assert store.objects["customer"]["cus_x"]["email"] == "a@example.com"
    assert store.objects["event"] == {}


def test_a_delete_refuses_a_parameter_its_version_does_not_take(http: httpx.Client) -> None:
    """Stripe's SDK gives ``DELETE /v1/customers/{id}`` no parameters at all: one sent is
    refused as Stripe refuses it, and the customer stays. (An empty parameter list was read as
    "anything goes" before, and the delete went through.)"""
    customer = http.post("/v1/customers", data={"email": "a@example.com"}).json()
    for params in ({"colour": "red"}, {"expand[]": "sources"}):
        refused = http.delete(f"/v1/customers/{customer['id']}", params=params)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["param"]) == ("parameter_unknown",
                                                    next(iter(params)).rstrip("[]"))
    assert http.get(f"/v1/customers/{customer['id']}").status_code == 200
    clock = http.post("/v1/test_helpers/test_clocks", data={"frozen_time": "1577836800"}).json()
    assert http.delete(f"/v1/test_helpers/test_clocks/{clock['id']}",
                       params={"name": "x"}).status_code == 400
    assert http.delete(f"/v1/test_helpers/test_clocks/{clock['id']}").json()["deleted"] is True
