"""The local Stripe is the API version each request asks for, judged by Stripe's own SDK data.

``versions/stripe_api.json`` holds, per version, what stripe-python's generated params and
resource classes say (``tools/stripe_versions.py``). These tests walk every route and version
of the emulator against it, and check what it renders, requests and webhooks alike.
"""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest
import stripe

from ichido.emulator import Emulator, EmulatorServer, Endpoint, versions
from ichido.emulator.routes import api
from tests.emulator.support import KEY, SECRET, Receiver, card_params, client

OLDEST, NEWEST = versions.supported()[0], versions.supported()[-1]
DAHLIA = "2026-07-29.dahlia"


def _get(http: httpx.Client, path: str, version: str, **params: Any) -> dict[str, Any]:
    answer = http.get(path, params=params, headers={"Stripe-Version": version})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _post(http: httpx.Client, path: str, version: str, data: dict[str, Any]) -> httpx.Response:
    return http.post(path, data=data, headers={"Stripe-Version": version})


def problems(value: Any, version: versions.Version, tree: dict[str, Any] | None = None,
             where: str = "") -> list[str]:
    """Every field rendered that ``version``'s SDK classes do not have, at any depth."""
    found: list[str] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += problems(item, version, tree, f"{where}[{i}]")
        return found
    if not isinstance(value, dict):
        return found
    kind = value.get("object")
    if kind == "event":
        version = versions.Version(value["api_version"])
    if isinstance(kind, str) and kind != "list":
        own = versions.fields(version, kind)
        if own is not None:
            tree = own
    if kind == "list" or not tree:
        for name, item in value.items():
            found += problems(item, version, None, f"{where}.{name}")
        return found
    for name, item in value.items():
        if name not in tree:
            found.append(f"{kind or where}.{name} in {version}")
        else:
            found += problems(item, version, tree[name] or None, f"{where}.{name}")
    return found


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    default, basil = Receiver().start(), Receiver().start()
    yield default, basil
    default.stop()
    basil.stop()


@pytest.fixture
def endpoints_server(receivers: tuple[Receiver, Receiver]) -> Iterator[EmulatorServer]:
    emu = Emulator(api_key=KEY, endpoints=[Endpoint(receivers[0].url, (SECRET,))])
    with EmulatorServer(emu) as running:
        yield running


# -- requests ------------------------------------------------------------------------------
def test_every_route_takes_what_its_version_takes_and_refuses_the_rest(
        emulator: Emulator, http: httpx.Client) -> None:
    """Each top-level parameter any version has, sent to each route in each version: refused
    as ``parameter_unknown`` (or its own removal code) exactly when that version lacks it.
    A parameter every version has is tried at the two ends of the range."""
    data = versions._data()["params"]
    checked = 0
    for method, path, _ in api(emulator):
        route = versions.route_key(method, path)
        if route not in data:
            continue
        tree = versions._tree(data[route])[1]
        url = path.replace("{id}", "x_missing")
        for raw, node in tree.items():
            name = raw.lstrip("!")
            mask = versions._children(tree, name)
            assert mask is not None
            every = mask[0] == (1 << len(versions.supported())) - 1
            for version in (OLDEST, NEWEST) if every else versions.supported():
                has = versions.knows(versions.Version(version), route, name)
                params = {name: "x"}
                answer = http.request(method, url, params=params if method != "POST" else None,
                                      data=params if method == "POST" else None,
                                      headers={"Stripe-Version": version})
                error = answer.json().get("error", {}) if answer.status_code >= 400 else {}
                refused = error.get("code") in ("parameter_unknown",
                                                "payment_method_types_no_longer_supported") \
                    and error.get("param") == name
                assert refused != has, (route, name, version, answer.status_code, error)
                checked += 1
    assert checked > 500


def test_endive_refuses_payment_method_types_and_takes_allowed_types(
        http: httpx.Client) -> None:
    for path, data in (
            ("/v1/payment_intents", {"amount": "1500", "currency": "jpy",
                                     "payment_method_types[]": "konbini"}),
            ("/v1/checkout/sessions", {"mode": "payment", "payment_method_types[]": "card",
                                       "line_items[0][price_data][currency]": "jpy",
                                       "line_items[0][price_data][unit_amount]": "1500",
                                       "line_items[0][price_data][product_data][name]": "A",
                                       "success_url": "https://shop.test/ok"})):
        refused = _post(http, path, "2026-10-28.endive", data)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "payment_method_types_no_longer_supported"
        assert refused.json()["error"]["param"] == "payment_method_types"
        for older in (OLDEST, DAHLIA):  # basil..dahlia take it as they did
            assert _post(http, path, older, data).status_code == 200
        allowed = {k.replace("payment_method_types", "allowed_payment_method_types"): v
                   for k, v in data.items()}
        taken = _post(http, path, "2026-10-28.endive", allowed)
        assert taken.status_code == 200, taken.text
        body = taken.json()
        assert body["payment_method_types"] == [data["payment_method_types[]"]]
        assert body["allowed_payment_method_types"] == [data["payment_method_types[]"]]
        before = _post(http, path, OLDEST, allowed).json()["error"]
        assert (before["code"], before["param"]) == ("parameter_unknown",
                                                     "allowed_payment_method_types")


def test_allowed_types_drop_what_cannot_pay_and_exclude_the_other_lists(
        http: httpx.Client) -> None:
    base = {"amount": "60", "currency": "jpy"}  # under konbini's ¥120 minimum
    dropped = _post(http, "/v1/payment_intents", NEWEST, base | {
        "allowed_payment_method_types[0]": "card", "allowed_payment_method_types[1]": "konbini",
        "allowed_payment_method_types[2]": "paypay"}).json()
    assert dropped["payment_method_types"] == ["card", "paypay"]  # PayPay takes ¥50 and more
    excluded = _post(http, "/v1/payment_intents", NEWEST, {
        "amount": "1500", "currency": "jpy",
        "excluded_payment_method_types[]": "card"}).json()
    assert excluded["payment_method_types"] == ["konbini"]
    both = _post(http, "/v1/payment_intents", NEWEST, base | {
        "allowed_payment_method_types[]": "card", "excluded_payment_method_types[]": "konbini"})
    assert both.status_code == 400
    assert both.json()["error"]["param"] == "excluded_payment_method_types"


def test_the_sdk_pinned_at_endive_gets_stripes_error(sdk: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.payment_intents.create(params={  # type: ignore[typeddict-unknown-key]
            "amount": 1500, "currency": "jpy", "payment_method_types": ["card"]})
    assert caught.value.code == "payment_method_types_no_longer_supported"
    pi = sdk.v1.payment_intents.create(params={
        "amount": 1500, "currency": "jpy", "allowed_payment_method_types": ["card"],
        "payment_method": "pm_card_visa", "confirm": True})
    assert pi.status == "succeeded" and pi.payment_method_types == ["card"]


@pytest.mark.parametrize("header,message", [
    ("2019-2-19", "Invalid Stripe API version: 2019-2-19"),
    ("2024-06-20", "2024-06-20 is outside that range"),
    ("2026-12-01.fig", "2026-12-01.fig is outside that range")])
def test_a_version_outside_the_range_is_refused_clearly(http: httpx.Client, header: str,
                                                        message: str) -> None:
    answer = http.get("/v1/customers", headers={"Stripe-Version": header})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and message in error["message"]


def test_the_answer_says_its_version(http: httpx.Client) -> None:
    assert http.get("/v1/customers").headers["Stripe-Version"] == versions.DEFAULT
    assert http.get("/v1/customers", headers={"Stripe-Version": OLDEST}) \
        .headers["Stripe-Version"] == OLDEST


def test_the_account_default_is_a_setting() -> None:
    emu = Emulator(api_key=KEY, api_version=OLDEST)
    with EmulatorServer(emu) as running, httpx.Client(
            base_url=running.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        assert http.get("/v1/customers").headers["Stripe-Version"] == OLDEST
        http.post("/v1/customers", data={"email": "a@shop.test"})
        assert http.get("/v1/events").json()["data"][0]["api_version"] == OLDEST
    with pytest.raises(ValueError, match="API version"):
        Emulator(api_version="2024-06-20")


# -- objects -------------------------------------------------------------------------------
def _scenario(http: httpx.Client, version: str) -> list[dict[str, Any]]:
    """One of everything, created and read in ``version``."""
    out: list[dict[str, Any]] = []
    types = "allowed_payment_method_types" if version >= versions.ENDIVE \
        else "payment_method_types"
    card = {k: v for k, v in card_params().items() if k != "allowed_payment_method_types"}
    paid = _post(http, "/v1/payment_intents", version, {
        **{k: str(v).lower() for k, v in card.items()}, f"{types}[]": "card"}).json()
    out.append(paid)
    out.append(_post(http, "/v1/refunds", version, {"payment_intent": paid["id"],
                                                    "amount": "100"}).json())
    voucher = _post(http, "/v1/payment_intents", version, {
        "amount": "1500", "currency": "jpy", f"{types}[]": "konbini", "confirm": "true",
        "payment_method_data[type]": "konbini",
        "payment_method_data[billing_details][name]": "Hanako",
        "payment_method_data[billing_details][email]": "hanako@test.com"}).json()
    out.append(voucher)
    customer = _post(http, "/v1/customers", version, {
        "email": "a@shop.test", "payment_method": "pm_card_visa"}).json()
    price = _post(http, "/v1/prices", version, {
        "currency": "jpy", "unit_amount": "980", "recurring[interval]": "month",
        "product_data[name]": "Plan"}).json()
    sub = _post(http, "/v1/subscriptions", version, {
        "customer": customer["id"], "items[0][price]": price["id"]}).json()
    out += [customer, price, sub]
    out.append(_get(http, f"/v1/invoices/{sub['latest_invoice']}", version,
                    **{"expand[]": "payments"}))
    out.append(_post(http, "/v1/checkout/sessions", version, {
        "mode": "payment", f"{types}[]": "card", "success_url": "https://shop.test/ok",
        "line_items[0][price_data][currency]": "jpy",
        "line_items[0][price_data][unit_amount]": "1500",
        "line_items[0][price_data][product_data][name]": "A"}).json())
    for path in ("/v1/charges", "/v1/balance_transactions", "/v1/events", "/v1/products",
                 "/v1/invoice_payments", "/v1/webhook_endpoints"):
        out.append(_get(http, path, version, limit=100))
    out.append(_get(http, f"/v1/payment_methods/{paid['payment_method']}", version))
    return out


@pytest.mark.parametrize("version", versions.supported())
def test_every_object_has_only_the_fields_of_its_version(http: httpx.Client,
                                                         version: str) -> None:
    rendered = _scenario(http, version)
    for obj in rendered:
        assert "error" not in obj, obj
    assert problems(rendered, versions.Version(version)) == []
    invoice = next(o for o in rendered if o["object"] == "invoice")
    sub = next(o for o in rendered if o["object"] == "subscription")
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
    assert not {"subscription", "payment_intent", "charge", "paid"} & set(invoice)
    payment = invoice["payments"]["data"][0]
    assert payment["payment"]["payment_intent"] and payment["status"] == "paid"
    assert "current_period_end" not in sub
    assert sub["items"]["data"][0]["current_period_end"] > sub["start_date"]
    line = invoice["lines"]["data"][0]
    assert line["parent"]["subscription_item_details"]["subscription"] == sub["id"]
    pi = rendered[0]
    assert ("allowed_payment_method_types" in pi) == (version >= DAHLIA)
    assert "invoice" not in pi


def test_events_go_to_each_endpoint_in_its_api_version(
        endpoints_server: EmulatorServer, receivers: tuple[Receiver, Receiver]) -> None:
    default, basil = receivers
    with httpx.Client(base_url=endpoints_server.url,
                      headers={"Authorization": f"Bearer {KEY}"}) as http:
        made = http.post("/v1/webhook_endpoints", data={
            "url": basil.url, "enabled_events[]": "*", "api_version": OLDEST}).json()
        assert made["api_version"] == OLDEST and made["secret"].startswith("whsec_")
        refused = http.post("/v1/webhook_endpoints", data={
            "url": basil.url, "enabled_events[]": "*", "api_version": "2024-06-20"})
        assert refused.status_code == 400
        customer = http.post("/v1/customers", data={"payment_method": "pm_card_visa"}).json()
        price = http.post("/v1/prices", data={
            "currency": "jpy", "unit_amount": "980", "recurring[interval]": "month",
            "product_data[name]": "Plan"}).json()
        sub = http.post("/v1/subscriptions", data={
            "customer": customer["id"], "items[0][price]": price["id"]}).json()
        assert sub["status"] == "active"
    endpoints_server.emulator.settle()
    for receiver, version in ((default, versions.DEFAULT), (basil, OLDEST)):
        events = {d.event["type"]: d.event for d in receiver.deliveries}
        assert {e["api_version"] for e in events.values()} == {version}
        paid = events["invoice.paid"]["data"]["object"]
        assert paid["parent"]["subscription_details"]["subscription"] == sub["id"]
        assert problems([d.event for d in receiver.deliveries],
                        versions.Version(version)) == []
        updated = events["customer.subscription.updated"]["data"]
        assert updated["previous_attributes"] == {"status": "incomplete"}
    stripe.WebhookSignature.verify_header(
        basil.deliveries[0].body.decode(), basil.deliveries[0].signature, made["secret"])


def test_every_version_has_its_source() -> None:
    assert len(versions.supported()) >= 19
    assert versions.supported()[0] == "2025-03-31.basil"
    assert "2026-10-28.endive" in versions.supported()  # stripe-python 16.1's pin
    assert "2026-11-18.endive" in versions.supported()  # stripe-node 23.2's pin
    for version, source in versions.sources().items():
        assert source.startswith(("stripe-python ", "stripe-node ")), (version, source)
    assert client  # the SDK helper stays importable for the other tests
