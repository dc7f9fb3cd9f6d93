"""Idempotency keys as Stripe keeps them: replay, misuse, in-flight conflicts, what is saved."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import pytest
import stripe

from ichido.emulator import Emulator, EmulatorServer
from tests.emulator.support import KEY, card_params

CREATE = {"amount": "1500", "currency": "jpy", "metadata[order]": "o_1"}


def post(http: httpx.Client, key: str, data: dict[str, str],
         path: str = "/v1/payment_intents") -> httpx.Response:
    return http.post(path, data=data, headers={"Idempotency-Key": key})


def test_replay_returns_the_same_status_and_body(http: httpx.Client,
                                                 emulator: Emulator) -> None:
    first = post(http, "k-1", CREATE)
    again = post(http, "k-1", dict(reversed(list(CREATE.items()))))  # order does not matter
    assert again.status_code == first.status_code == 200
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Original-Request"] == first.headers["Request-Id"]
    assert again.headers["Request-Id"] != first.headers["Request-Id"]
    assert "Idempotent-Replayed" not in first.headers
    assert len(emulator.store.objects["payment_intent"]) == 1
    created = [e for e in emulator.events() if e["type"] == "payment_intent.created"]
    assert created[0]["request"] == {"id": first.headers["Request-Id"], "idempotency_key": "k-1"}


def test_same_key_other_parameters_is_an_idempotency_error(sdk: stripe.StripeClient) -> None:
    first = sdk.v1.payment_intents.create(params={"amount": 1500, "currency": "jpy"},
                                          options={"idempotency_key": "order-7"})
    again = sdk.v1.payment_intents.create(params={"amount": 1500, "currency": "jpy"},
                                          options={"idempotency_key": "order-7"})
    assert again.id == first.id
    with pytest.raises(stripe.IdempotencyError) as caught:
        sdk.v1.payment_intents.create(params={"amount": 1600, "currency": "jpy"},
                                      options={"idempotency_key": "order-7"})
    assert caught.value.http_status == 400
    assert caught.value.json_body["error"]["type"] == "idempotency_error"
    assert "order-7" in caught.value.json_body["error"]["message"]


def test_same_key_on_another_endpoint_is_an_idempotency_error(http: httpx.Client) -> None:
    pi = post(http, "k-2", CREATE).json()
    other = post(http, "k-2", {}, path=f"/v1/payment_intents/{pi['id']}/cancel")
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"


def test_validation_failures_are_not_saved(http: httpx.Client) -> None:
    bad = post(http, "k-3", {"amount": "oops", "currency": "jpy"})
    assert bad.status_code == 400
    good = post(http, "k-3", CREATE)
    assert good.status_code == 200 and "Idempotent-Replayed" not in good.headers


def test_a_declined_card_is_a_result_and_is_saved(http: httpx.Client,
                                                  emulator: Emulator) -> None:
    data = {"amount": "1500", "currency": "jpy", "payment_method": "pm_card_chargeDeclined",
            "confirm": "true"}
    first = post(http, "k-4", data)
    again = post(http, "k-4", data)
    assert first.status_code == again.status_code == 402
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    assert len(emulator.store.objects["payment_intent"]) == 1


def test_keys_longer_than_255_characters_are_refused(http: httpx.Client) -> None:
    assert post(http, "k" * 255, CREATE).status_code == 200
    too_long = post(http, "k" * 256, CREATE)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["type"] == "invalid_request_error"


def test_keys_are_forgotten_after_24_hours(http: httpx.Client, emulator: Emulator) -> None:
    first = post(http, "k-5", CREATE).json()
    emulator.advance(24 * 3600)
    later = post(http, "k-5", CREATE)
    assert "Idempotent-Replayed" not in later.headers and later.json()["id"] != first["id"]


def test_concurrent_request_with_a_key_in_flight_gets_409() -> None:
    emulator = Emulator(api_key=KEY)
    emulator.api_gate = threading.Event()  # the first request waits there, key in flight
    with EmulatorServer(emulator) as server:
        headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "k-6"}

        def send() -> httpx.Response:
            return httpx.post(f"{server.url}/v1/payment_intents", data=CREATE, headers=headers,
                              timeout=10)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(send)
            while "k-6" not in emulator.keys.in_flight:  # the first one is executing now
                time.sleep(0.005)
            conflict = send()
            emulator.api_gate.set()
            answer = first.result()
        assert (answer.status_code, conflict.status_code) == (200, 409)
        error = conflict.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error",
                                                  "idempotency_key_in_use")
        replay = send()  # the conflict was not saved; the first answer was
        assert replay.content == answer.content
        assert len(emulator.store.objects["payment_intent"]) == 1


def test_sdk_retries_a_409_with_the_same_key_and_gets_the_first_object() -> None:
    emulator = Emulator(api_key=KEY, api_delay=0.3)
    with EmulatorServer(emulator) as server:
        client = stripe.StripeClient(KEY, base_addresses={"api": server.url},
                                     max_network_retries=3)

        def create(_: int) -> str:
            return client.v1.payment_intents.create(
                params=card_params(), options={"idempotency_key": "k-7"}).id

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            ids = list(pool.map(create, range(2)))
        assert ids[0] == ids[1]
        assert len(emulator.store.objects["charge"]) == 1
