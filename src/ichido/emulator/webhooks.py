"""The webhook sender: every event to every endpoint, signed, retried, and shaken on purpose.

Stripe's rules (docs.stripe.com/webhooks, …/webhooks/process-undelivered-events): any 2xx is
success; anything else, or no answer in time, is a failure retried with exponential backoff
for up to three days in live mode (a sandbox retries three times over a few hours). Stripe does
not publish the intervals or the timeout (third-party write-ups disagree: 10–30 s), so:
``LIVE_RETRY_DELAYS`` doubles from one minute, capped at 12 h, ending 72 h after the first try
(16 attempts); ``time_scale`` multiplies every wait (0.001 turns three days into ~4 minutes).
The signature is ``signature.sign``: one ``v1`` per secret, so a secret roll signs with both.

Pacing: at most ``concurrency`` requests (default ``DEFAULT_CONCURRENCY``) are on the wire at
once, as Stripe paces its own deliveries. The others wait their turn before they are signed and
timed, so under a backlog of thousands the ``timeout`` covers the receiver's answer only, not
time spent queued for one of the HTTP client's connections.

Chaos, for testing receivers: ``duplicate_rate`` sends a second copy of a delivery, half the
time at the same instant and half a little later; ``reorder_window`` holds an object's events
for that many seconds and releases them shuffled; ``delay`` holds every first attempt;
``fail_rate`` treats a 2xx as a timeout, so the receiver gets the event again on the retry.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import httpx

from ichido import signature


def _live_schedule(first: int = 60, cap: int = 12 * 3600, total: int = 72 * 3600) -> tuple[
        int, ...]:
    delays: list[int] = []
    while sum(delays) < total:
        delays.append(min(first * 2 ** len(delays), cap, total - sum(delays)))
    return tuple(delays)


LIVE_RETRY_DELAYS = _live_schedule()
TEST_RETRY_DELAYS = (3600, 2 * 3600, 3 * 3600)  # "three times over a few hours"
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
DEFAULT_CONCURRENCY = 32  # requests on the wire at once, well under httpx's 100 connections


@dataclass(frozen=True)
class Endpoint:
    url: str
    secrets: tuple[str, ...]


@dataclass
class Chaos:
    duplicate_rate: float = 0.0
    reorder_window: float = 0.0
    delay: float = 0.0
    fail_rate: float = 0.0


@dataclass
class EndpointStats:
    succeeded: int = 0  # 2xx answers
    failed: int = 0  # other answers, timeouts, refused connections, forced failures
    gave_up: int = 0  # events never delivered after every retry


@dataclass
class DeliveryStats:
    events_enqueued: int = 0
    attempts: int = 0
    retries: int = 0
    duplicates_sent: int = 0
    forced_failures: int = 0
    endpoints: dict[str, EndpointStats] = field(default_factory=dict)


class WebhookSender:
    """Runs on the server's event loop; ``enqueue`` may be called from any thread."""

    def __init__(self, endpoints: Sequence[Endpoint], render: Callable[[str], bytes | None],
                 delivered: Callable[[str], None], *, chaos: Chaos | None = None,
                 time_scale: float = 1.0, timeout: float = 10.0,
                 retry_delays: Sequence[float] = LIVE_RETRY_DELAYS,
                 concurrency: int = DEFAULT_CONCURRENCY, seed: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency is at least 1, got {concurrency}")
        self.endpoints, self.render, self.delivered = list(endpoints), render, delivered
        self.chaos, self.time_scale, self.timeout = chaos or Chaos(), time_scale, timeout
        self.retry_delays, self.concurrency = tuple(retry_delays), concurrency
        self.rng = random.Random(seed)
        self._stats = DeliveryStats(endpoints={e.url: EndpointStats() for e in self.endpoints})
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._gate: asyncio.Semaphore | None = None  # made in start(): bound to that loop
        self._backlog: list[tuple[str, str]] = []
        self._incoming = 0  # enqueued, not yet admitted on the loop
        self._held: dict[str, list[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: set[tuple[str, str]] = set()  # (event id, url) answered 2xx

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=self.timeout)
        self._gate = asyncio.Semaphore(self.concurrency)
        backlog, self._backlog = self._backlog, []
        for event_id, object_id in backlog:
            self._admit(event_id, object_id)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._held.clear()
        if self._client is not None:
            await self._client.aclose()
        self._loop = None

    def enqueue(self, event: dict[str, Any]) -> None:
        if not self.endpoints:
            return
        item = (event["id"], str(event["data"]["object"].get("id")))
        with self._lock:
            self._stats.events_enqueued += 1
            self._incoming += 1
            loop = self._loop
            if loop is None:
                self._backlog.append(item)
                return
        if _on_loop(loop):
            self._admit(*item)
        else:
            loop.call_soon_threadsafe(self._admit, *item)

    def busy(self) -> bool:
        return bool(self._incoming or self._tasks or self._held)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self._stats)

    # -- scheduling ------------------------------------------------------------------------
    def _admit(self, event_id: str, object_id: str) -> None:
        with self._lock:
            self._incoming -= 1
        window = self.chaos.reorder_window
        if window <= 0:
            self._dispatch(event_id)
            return
        held = self._held.setdefault(object_id, [])
        held.append(event_id)
        if len(held) == 1:
            assert self._loop is not None
            self._loop.call_later(window, self._release, object_id)

    def _release(self, object_id: str) -> None:
        batch = self._held.pop(object_id, [])
        self.rng.shuffle(batch)
        for event_id in batch:
            self._dispatch(event_id)

    def _dispatch(self, event_id: str) -> None:
        for endpoint in self.endpoints:
            self._spawn(self._deliver(event_id, endpoint, self.chaos.delay, retry=True))
            if self.rng.random() < self.chaos.duplicate_rate:
                # Two at once (the receiver races itself) or a copy a little later.
                later = self.rng.random() < 0.5
                spread = max(0.1, self.chaos.reorder_window)
                hold = self.chaos.delay + (self.rng.uniform(0.05, spread) if later else 0.0)
                with self._lock:
                    self._stats.duplicates_sent += 1
                self._spawn(self._deliver(event_id, endpoint, hold, retry=False))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- delivery --------------------------------------------------------------------------
    async def _deliver(self, event_id: str, endpoint: Endpoint, hold: float,
                       retry: bool) -> None:
        if hold > 0:
            await asyncio.sleep(hold)
        for attempt in range(len(self.retry_delays) + 1):
            if attempt and (event_id, endpoint.url) in self._done:
                return  # a duplicate copy got through meanwhile: Stripe stops retrying
            body = self.render(event_id)
            if body is None:
                return  # older than 30 days: gone
            ok = await self._post(endpoint, body)
            if ok and retry and attempt == 0 and self.rng.random() < self.chaos.fail_rate:
                ok = False
                with self._lock:
                    self._stats.forced_failures += 1
            self._count(endpoint, ok)
            if ok:
                if (event_id, endpoint.url) not in self._done:
                    self._done.add((event_id, endpoint.url))
                    self.delivered(event_id)
                return
            if not retry or attempt == len(self.retry_delays):
                break
            await asyncio.sleep(self.retry_delays[attempt] * self.time_scale)
            with self._lock:
                self._stats.retries += 1
        if retry and (event_id, endpoint.url) not in self._done:
            with self._lock:
                self._stats.endpoints[endpoint.url].gave_up += 1

    async def _post(self, endpoint: Endpoint, body: bytes) -> bool:
        assert self._client is not None and self._gate is not None
        # Wait for a turn before signing: a queued delivery keeps a fresh timestamp and
        # does not spend its timeout in httpx's connection pool.
        async with self._gate:
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "User-Agent": USER_AGENT,
                       "Stripe-Signature": signature.sign(body, endpoint.secrets,
                                                          int(time.time()))}
            with self._lock:
                self._stats.attempts += 1
            try:
                response = await self._client.post(endpoint.url, content=body,
                                                   headers=headers)
            except httpx.HTTPError:
                return False
        return 200 <= response.status_code < 300

    def _count(self, endpoint: Endpoint, ok: bool) -> None:
        with self._lock:
            stats = self._stats.endpoints[endpoint.url]
            if ok:
                stats.succeeded += 1
            else:
                stats.failed += 1


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
