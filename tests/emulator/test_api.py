"""The API's envelope: auth, Request-Id, Stripe's error objects, lists, expansion."""

from __future__ import annotations

import base64

import httpx
import pytest
import stripe

from ichido.emulator import EmulatorServer
from tests.emulator.schemas import problems
from tests.emulator.support import KEY, card_params


def test_every_answer_has_a_request_id(http: httpx.Client) -> None:
    ok = http.get("/v1/events")
    missing = http.get("/v1/payment_intents/pi_nope")
    assert ok.headers["Request-Id"].startswith("req_")
    assert missing.headers["Request-Id"].startswith("req_")
    assert ok.headers["Request-Id"] != missing.headers["Request-Id"]


@pytest.mark.parametrize("auth", [None, "Bearer sk_test_other", "Bearer sk_live_abc",
                                  "Token sk_test_emulator"])
def test_requests_without_the_right_key_get_401(server: EmulatorServer,
                                                auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    response = httpx.post(f"{server.url}/v1/payment_intents", headers=headers,
                          data={"amount": "1500", "currency": "jpy"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "sk_test_emulator"[-4:] not in response.text or auth is None
    assert server.emulator.events() == []


def test_basic_auth_as_curl_sends_it_is_accepted(server: EmulatorServer) -> None:
    token = base64.b64encode(f"{KEY}:".encode()).decode()
    response = httpx.get(f"{server.url}/v1/events", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 200


def test_emulator_controls_need_the_key_too(server: EmulatorServer) -> None:
    response = httpx.post(f"{server.url}/_emulator/clock/advance", data={"seconds": "60"})
    assert response.status_code == 401


def test_missing_object_is_a_404_resource_missing(http: httpx.Client) -> None:
    error = http.get("/v1/payment_intents/pi_missing").json()["error"]
    assert error["code"] == "resource_missing" and error["param"] == "intent"
    assert error["message"] == "No such payment_intent: 'pi_missing'"
    assert problems(error, "api_errors") == []


def test_unknown_url_and_unknown_parameter(http: httpx.Client) -> None:
    unknown_url = http.get("/v1/quotes")
    assert unknown_url.status_code == 404
    assert "Unrecognized request URL (GET: /v1/quotes)" in unknown_url.json()["error"]["message"]
    bad = http.post("/v1/payment_intents", data={"amount": "1500", "currency": "jpy",
                                                 "colour": "red"})
    assert bad.status_code == 400
    assert bad.json()["error"] | {} == bad.json()["error"]
    assert (bad.json()["error"]["code"], bad.json()["error"]["param"]) == \
        ("parameter_unknown", "colour")


def test_missing_and_malformed_parameters_name_the_param(http: httpx.Client) -> None:
    missing = http.post("/v1/payment_intents", data={"currency": "jpy"}).json()["error"]
    assert (missing["code"], missing["param"]) == ("parameter_missing", "amount")
    malformed = http.post("/v1/payment_intents", data={"amount": "lots", "currency": "jpy"})
    assert malformed.json()["error"]["param"] == "amount"
    assert problems(missing, "api_errors") == []


def test_list_pages_with_cursors_both_ways(sdk: stripe.StripeClient) -> None:
    created = [sdk.v1.payment_intents.create(params={"amount": 100 + i, "currency": "jpy"}).id
               for i in range(5)]
    newest_first = created[::-1]
    first = sdk.v1.payment_intents.list(params={"limit": 2})
    assert [p.id for p in first.data] == newest_first[:2] and first.has_more
    assert first.url == "/v1/payment_intents"
    rest = sdk.v1.payment_intents.list(params={"limit": 10, "starting_after": first.data[-1].id})
    assert [p.id for p in rest.data] == newest_first[2:] and not rest.has_more
    before = sdk.v1.payment_intents.list(params={"limit": 2, "ending_before": newest_first[3]})
    assert [p.id for p in before.data] == newest_first[1:3] and before.has_more
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.payment_intents.list(params={"limit": 101})


def test_expand_replaces_ids_with_objects(sdk: stripe.StripeClient) -> None:
    pi = sdk.v1.payment_intents.create(params={
        **card_params(), "expand": ["latest_charge.balance_transaction", "payment_method"]})
    assert pi.latest_charge.object == "charge"
    assert pi.latest_charge.balance_transaction.object == "balance_transaction"
    assert pi.payment_method.card.last4 == "4242"
    charges = sdk.v1.charges.list(params={"payment_intent": pi.id,
                                          "expand": ["data.payment_intent"]})
    assert charges.data[0].payment_intent.id == pi.id
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        sdk.v1.payment_intents.retrieve(pi.id, params={"expand": ["amount"]})


def test_voucher_page_needs_no_key(sdk: stripe.StripeClient, server: EmulatorServer) -> None:
    from tests.emulator.support import konbini_params

    pi = sdk.v1.payment_intents.create(params=konbini_params())
    page = httpx.get(pi.next_action.konbini_display_details.hosted_voucher_url)
    assert page.status_code == 200 and "¥1,500" in page.text
    codes = pi.next_action.konbini_display_details.stores.seicomart
    assert codes.payment_code in page.text


def test_a_rate_limit_answers_429_to_the_next_requests(server: EmulatorServer,
                                                      http: httpx.Client) -> None:
    """For callers that must back off: the SDK raises ``RateLimitError`` (it does not retry a
    429 itself), and the limit lasts for the number of requests asked for."""
    assert http.post("/_emulator/rate_limit", data={"requests": "2"}).status_code == 200
    sdk = stripe.StripeClient(KEY, base_addresses={"api": server.url})
    for _ in range(2):
        with pytest.raises(stripe.RateLimitError) as caught:
            sdk.v1.events.list()
        assert caught.value.http_status == 429
        assert problems(caught.value.json_body["error"], "api_errors") == []
    assert http.get("/_emulator/stats").status_code == 200  # controls are never limited
    assert sdk.v1.events.list().data == []
