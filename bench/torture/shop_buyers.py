"""The shop torture's buyers: each one places an order through a random receiver, pays or lets
the konbini voucher expire, asks for refunds (konbini refunds wait for bank details), every step
retried with its Idempotency-Key when an answer is lost, as a careful client does. Buyers pause
while the local Stripe has many deliveries under way (backpressure)."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Any, Callable

import httpx

from bench.torture.chaos import Chaos
from bench.torture.services import Fleet, Service
from bench.torture.shop_emulator import EmulatorProcess
from bench.torture.shop_plan import API_KEY, Plan


class Buyers:
    def __init__(self, fleet: Fleet, emulator: EmulatorProcess, chaos: Chaos, *, run_tag: str,
                 rng: random.Random, story_timeout: float, max_in_flight: int,
                 aborting: threading.Event) -> None:
        self.fleet, self.emulator, self.chaos, self.rng = fleet, emulator, chaos, rng
        self.run_tag, self.aborting = run_tag, aborting
        self.story_timeout, self.max_in_flight = story_timeout, max_in_flight
        self.emulator_state: dict[str, Any] = {"in_flight": 0, "busy": True, "events": 0}
        self.local = threading.local()
        self.done_lock = threading.Lock()
        self.done = 0
        self.client_retries = 0

    def http(self) -> httpx.Client:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(timeout=30)
        return client

    def call(self, method: str, path: str, *, final: tuple[int, ...], base: str | None = None,
             deadline: float | None = None, **kwargs: Any) -> httpx.Response:
        """One request, retried as a careful client retries: on no answer or a 5xx, against any
        receiver, with the same Idempotency-Key, until an answer in ``final`` (bounded)."""
        deadline = deadline or self.story_timeout
        until = time.monotonic() + deadline
        pause = 0.05
        last = "no answer"
        while True:
            url = base or self.rng_choice(self.fleet.receivers).url
            try:
                response = self.http().request(method, f"{url}{path}", **kwargs)
                if response.status_code in final:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
                if response.status_code < 500 and response.status_code not in (409,):
                    raise RuntimeError(f"{method} {path}: {last}")
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                self.local.client = None  # a connection to a killed process: start afresh
            if time.monotonic() > until or self.aborting.is_set():
                raise RuntimeError(f"{method} {path}: no final answer in {deadline:g} s"
                                   f" (last: {last})")
            with self.done_lock:
                self.client_retries += 1
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def rng_choice(self, items: list[Service]) -> Service:
        return items[random.randrange(len(items))]

    def emulator_control(self, path: str, **form: str) -> httpx.Response:
        assert self.emulator is not None
        return self.call("POST", path, base=self.emulator.url, final=(200, 400),
                         data=form, headers={"Authorization": f"Bearer {API_KEY}"})

    def order_state(self, order_id: str) -> dict[str, Any]:
        return self.call("GET", f"/orders/{order_id}", final=(200,)).json()

    def wait(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.story_timeout
        pause = 0.05
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline or self.aborting.is_set():
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    def stripe_refund(self, request_id: str) -> tuple[str, str] | None:
        assert self.emulator is not None
        return self.emulator.refund(request_id)

    def watch_emulator(self) -> None:
        """One thread reads the emulator's state for everyone (buyers only look at it)."""
        while not self.aborting.is_set() and self.emulator is not None:
            with contextlib.suppress(httpx.HTTPError, RuntimeError):  # RuntimeError: closed
                self.emulator_state = self.emulator.status()
            time.sleep(0.05)

    def in_flight(self) -> int:
        """Deliveries the emulator has under way (retries waiting included)."""
        return int(self.emulator_state["in_flight"])

    def backpressure(self) -> None:
        """A buyer waits while Stripe has many deliveries under way: the emulator runs every
        delivery at once on one HTTP client, and a backlog there only times itself out."""
        while self.in_flight() > self.max_in_flight and not self.aborting.is_set():
            time.sleep(0.02)

    def story(self, plan: Plan) -> None:
        if self.aborting.is_set():
            return
        try:
            self.chaos.begin()
            self.backpressure()
            self._story(plan)
        except Exception as exc:  # counted, never silent
            plan.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self.done_lock:
                self.done += 1

    def _story(self, plan: Plan) -> None:
        key = f"torture-{self.run_tag}-{plan.index}"
        # Konbini: "fill_never" makes the emulator leave the voucher to us (pay or expire it).
        never = "fill_never" if plan.method == "konbini" else ""
        body: dict[str, Any] = {"product": plan.product, "payment_method": plan.method,
                                "email": f"t{plan.index}{never}@example.com"}
        if plan.method == "card":
            body["payment_method_id"] = ("pm_card_chargeDeclined" if plan.outcome == "declined"
                                         else "pm_card_visa")
        placed = self.call("POST", "/orders", json=body, final=(201, 402),
                           headers={"Idempotency-Key": key}).json()
        plan.order_id, plan.payment_intent = placed["id"], placed["payment_intent"]
        if plan.method == "konbini":
            if not plan.payment_intent:
                raise RuntimeError(f"konbini order {plan.order_id} has no PaymentIntent")
            action = "pay" if plan.outcome == "paid" else "expire"
            form = {"store": self.rng.choice(["familymart", "lawson", "ministop", "seicomart"])} \
                if action == "pay" else {}
            # A 400 here is "no open voucher": an earlier attempt did it and lost its answer.
            self.emulator_control(f"/_emulator/payment_intents/{plan.payment_intent}/{action}",
                                  **form)
        for number, amount in enumerate(plan.refunds):  # None: "the rest", no amount given
            self.refund(plan, key, number, amount)

    def refund(self, plan: Plan, key: str, number: int, amount: int | None) -> None:
        order_id = plan.order_id
        assert order_id is not None
        self.wait(f"order {order_id} to be paid", lambda: self.order_state(order_id)["status"]
                  in ("paid", "partially_refunded"))
        answer = self.call("POST", f"/orders/{order_id}/refund", final=(202,),
                           json={} if amount is None else {"amount": amount},
                           headers={"Idempotency-Key": f"{key}-refund-{number}"}).json()
        request_id = answer["refund_request"]["id"]
        plan.refund_requests.append(request_id)
        if plan.method == "konbini":  # the buyer gets the mail and sends bank details
            refund_id, _ = self.wait(f"the Stripe refund of {request_id}",
                                     lambda: self.stripe_refund(request_id))
            self.emulator_control(f"/_emulator/refunds/{refund_id}/bank_details",
                                  account_number="0001234")
