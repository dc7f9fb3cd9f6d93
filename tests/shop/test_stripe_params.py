"""What the shop sends Stripe is what the pinned version takes: checked against the SDK's
generated parameter types (stripe-python 16.1, ``2026-10-28.endive``), where
``payment_method_types`` no longer exists on PaymentIntent and Checkout Session create."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from stripe.params import PaymentIntentCreateParams
from stripe.params.checkout import SessionCreateParams

from ichido.config import Settings
from ichido.shop import versions
from ichido.shop.app import create_shop, stripe_client
from ichido.shop.checkout import session_params
from ichido.shop.order_request import OrderRequest
from ichido.shop.settings import ShopSettings


def keys(params: type) -> set[str]:
    return set(params.__required_keys__) | set(params.__optional_keys__)


ORDER = {"id": "ord_1", "amount": 1500, "quantity": 1, "product_name": "Tour T-shirt",
         "product_id": "tour-tshirt", "email": "buyer@example.com", "locale": "ja"}


@pytest.mark.parametrize("method", ["card", "konbini"])
def test_a_payment_intent_sends_only_parameters_endive_takes(tmp_path: Path, method: str) -> None:
    shop = create_shop(Settings(database_url=f"sqlite:///{tmp_path / 's.db'}"),
                       ShopSettings(stripe_api_key="sk_test_params"), workers=0)
    try:
        params = shop.payment_params({**ORDER, "payment_method": method},
                                     OrderRequest("tour-tshirt", 1, method, "buyer@example.com"))
    finally:
        shop.app.close()
    assert params["allowed_payment_method_types"] == [method]
    assert set(params) <= keys(PaymentIntentCreateParams), set(params) - keys(
        PaymentIntentCreateParams)


def test_a_checkout_session_sends_only_parameters_endive_takes() -> None:
    params = session_params(ORDER, ["card", "konbini"], expires_after_days=3,
                            return_url="http://127.0.0.1:8000/done")
    assert params["allowed_payment_method_types"] == ["card", "konbini"]
    assert set(params) <= keys(SessionCreateParams), set(params) - keys(SessionCreateParams)


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback HTTP server that records each request's headers and answers a customer."""
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            seen.append(dict(self.headers))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"id": "cus_1", "object": "customer"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_the_client_pins_the_version_the_shop_is_written_for(
        recorder: tuple[str, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch) -> None:
    base, seen = recorder
    import stripe

    # an SDK upgrade would change the default; the shop's pin must not follow it
    monkeypatch.setattr(stripe._api_version._ApiVersion, "CURRENT", "2027-01-01.future")
    client = stripe_client(ShopSettings(stripe_api_key="sk_test_pin", stripe_api_base=base))
    client.v1.customers.create(params={"email": "a@example.com"})
    assert seen[0]["Stripe-Version"] == versions.PINNED == "2026-10-28.endive"
