"""Helpers for the emulator's tests: a webhook receiver on loopback, and SDK clients."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
import stripe
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

KEY = "sk_test_emulator"
SECRET = "whsec_emulator_test_secret"


@dataclass
class Delivery:
    body: bytes
    signature: str
    event: dict[str, Any]


@dataclass
class Receiver:
    """A webhook endpoint that records what it gets; ``answer`` picks each status code."""

    answer: Callable[[Delivery, int], int] = lambda delivery, n: 200
    delay: Callable[[int], float] = lambda n: 0.0  # seconds before answering copy n
    deliveries: list[Delivery] = field(default_factory=list)
    in_flight: int = 0  # requests being answered right now
    most_in_flight: int = 0  # the highest in_flight seen, to check the sender's pacing

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                     log_level="error", lifespan="off"))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()),
                                        daemon=True)
        self.url = ""

    async def _hook(self, request: Request) -> Response:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            body = await request.body()
            delivery = Delivery(body, request.headers.get("Stripe-Signature", ""),
                                orjson.loads(body))
            with self._lock:
                self.deliveries.append(delivery)
                count = sum(d.event["id"] == delivery.event["id"] for d in self.deliveries)
            if self.delay(count):
                await asyncio.sleep(self.delay(count))
            return Response(status_code=self.answer(delivery, count))
        finally:
            with self._lock:
                self.in_flight -= 1

    def start(self) -> "Receiver":
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def ids(self) -> list[str]:
        with self._lock:
            return [d.event["id"] for d in self.deliveries]


def client(url: str, **options: Any) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": url}, **options)


def konbini_params(email: str = "hanako@test.com", amount: int = 1500,
                   **options: Any) -> dict[str, Any]:
    """Create-and-confirm parameters for a konbini PaymentIntent paid by ``email``."""
    return {"amount": amount, "currency": "jpy", "allowed_payment_method_types": ["konbini"],
            "payment_method_data": {"type": "konbini", "billing_details": {
                "name": "Hanako Yamada", "email": email}},
            "payment_method_options": {"konbini": {"product_description": "Video ticket",
                                                   **options}},
            "confirm": True}


def card_params(pm: str = "pm_card_visa", amount: int = 3000) -> dict[str, Any]:
    return {"amount": amount, "currency": "jpy", "allowed_payment_method_types": ["card"],
            "payment_method": pm, "confirm": True}
