"""The webhook sender: every event to every endpoint, signed, retried, and shaken on purpose.

Stripe's rules (docs.stripe.com/webhooks): any 2xx is success; anything else, or no answer in
time, is a failure retried with backoff for up to three days (``endpoints`` has the plan, and
what "disabled" and "down" mean). A retry waits for the emulator clock (``Emulator.advance``)
or for real time × ``time_scale`` (0.001 turns three days into ~4 minutes), whichever is first.
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
import contextlib
import random
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import httpx

from ichido import signature
from ichido.emulator.endpoints import (
    LIVE_RETRY_DELAYS,
    Endpoint,
    EndpointState,
    states,
)

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
DEFAULT_CONCURRENCY = 32  # requests on the wire at once, well under httpx's 100 connections
SOON = 1.0  # seconds: a retry due sooner than this in real time keeps the sender busy


@dataclass
class Chaos:
    duplicate_rate: float = 0.0
    reorder_window: float = 0.0
    delay: float = 0.0
    fail_rate: float = 0.0


@dataclass
class DeliveryStats:
    events_enqueued: int = 0
    attempts: int = 0
    retries: int = 0
    duplicates_sent: int = 0
    forced_failures: int = 0


class WebhookSender:
    """Runs on the server's event loop; ``enqueue`` may be called from any thread."""

    def __init__(self, endpoints: Sequence[Endpoint],
                 render: Callable[[str, str | None], bytes | None],
                 delivered: Callable[[str], None], *, chaos: Chaos | None = None,
                 time_scale: float = 1.0, timeout: float = 10.0,
                 retry_delays: Sequence[float] = LIVE_RETRY_DELAYS,
                 concurrency: int = DEFAULT_CONCURRENCY, seed: int | None = None,
                 now: Callable[[], float] = time.time) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency is at least 1, got {concurrency}")
        self.endpoints = states(list(endpoints))
        self._numbered = len(self.endpoints)  # ids are never reused, even after a delete
        self.render, self.delivered, self.now = render, delivered, now
        self.chaos, self.time_scale, self.timeout = chaos or Chaos(), time_scale, timeout
        self.retry_delays, self.concurrency = tuple(retry_delays), concurrency
        self.rng = random.Random(seed)
        self._stats = DeliveryStats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._gate: asyncio.Semaphore | None = None  # made in start(): bound to that loop
        self._clock_moved: asyncio.Event | None = None
        self._backlog: list[tuple[str, str, list[EndpointState]]] = []
        self._incoming = 0  # enqueued, not yet admitted on the loop
        self._held: dict[str, list[tuple[str, list[EndpointState]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: set[tuple[str, str]] = set()  # (event id, url) answered 2xx
        self._waiting: dict[int, tuple[float, float]] = {}  # retries asleep: clock, real due

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=self.timeout)
        self._gate = asyncio.Semaphore(self.concurrency)
        self._clock_moved = asyncio.Event()
        backlog, self._backlog = self._backlog, []
        for item in backlog:
            self._admit(*item)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._held.clear()
        if self._client is not None:
            await self._client.aclose()
        self._loop = None

    def enabled(self, event_type: str = "*") -> int:
        """How many endpoints a new event goes to: its ``pending_webhooks``."""
        return sum(state.wants(event_type) for state in self.endpoints)

    def add(self, endpoint: Endpoint) -> EndpointState:
        """A new endpoint (``POST /v1/webhook_endpoints``): it gets events from now on."""
        state = EndpointState(f"we_emulator{self._numbered}", endpoint)
        self._numbered += 1
        self.endpoints.append(state)
        return state

    def enqueue(self, event: dict[str, Any],
                only: Sequence[EndpointState] | None = None) -> None:
        """Deliver ``event`` to every endpoint that takes its type, or to ``only`` these (a
        resend)."""
        targets = [state for state in (self.endpoints if only is None else only)
                   if state.wants(event["type"])]
        if not targets:
            return
        item = (event["id"], _object_id(event), targets)
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

    def clock_moved(self) -> None:
        """The emulator clock jumped: retries it made due go now (any thread may call)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake) if not _on_loop(loop) else self._wake()

    def _wake(self) -> None:
        if self._clock_moved is not None:
            self._clock_moved.set()
            self._clock_moved = asyncio.Event()

    def busy(self) -> bool:
        """Anything on its way: a delivery in flight, held, or a retry due within ``SOON``
        seconds of real time. A retry that waits for the emulator clock (or hours of real
        time) is not busy: nothing will happen until someone advances the clock."""
        now, real = self.now(), time.monotonic()
        with self._lock:
            far = sum(clock_due > now and real_due - real > SOON
                      for clock_due, real_due in self._waiting.values())
        return bool(self._incoming or self._held or len(self._tasks) > far)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**asdict(self._stats),
                    "endpoints": {s.url: asdict(s.stats) for s in self.endpoints}}

    # -- scheduling ------------------------------------------------------------------------
    def _admit(self, event_id: str, object_id: str, targets: list[EndpointState]) -> None:
        with self._lock:
            self._incoming -= 1
        window = self.chaos.reorder_window
        if window <= 0:
            self._dispatch(event_id, targets)
            return
        held = self._held.setdefault(object_id, [])
        held.append((event_id, targets))
        if len(held) == 1:
            assert self._loop is not None
            self._loop.call_later(window, self._release, object_id)

    def _release(self, object_id: str) -> None:
        batch = self._held.pop(object_id, [])
        self.rng.shuffle(batch)
        for event_id, targets in batch:
            self._dispatch(event_id, targets)

    def _dispatch(self, event_id: str, targets: list[EndpointState]) -> None:
        for endpoint in targets:
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
    async def _deliver(self, event_id: str, endpoint: EndpointState, hold: float,
                       retry: bool) -> None:
        if hold > 0:
            await asyncio.sleep(hold)
        key = (event_id, endpoint.url)
        assert self._loop is not None
        first_clock, first_real, waited = self.now(), time.monotonic(), 0.0
        for attempt in range(len(self.retry_delays) + 1):
            if attempt:
                waited += self.retry_delays[attempt - 1]
                await self._until(first_clock + waited, first_real + waited * self.time_scale)
                if key in self._done:
                    return  # a duplicate copy got through meanwhile: Stripe stops retrying
                if not endpoint.enabled:
                    break  # disabled when the retry came due: no more retries for it
                with self._lock:
                    self._stats.retries += 1
            body = self.render(event_id, endpoint.endpoint.api_version)
            if body is None:
                return  # older than 30 days: gone
            ok = await self._post(endpoint, body)
            if ok and retry and attempt == 0 and self.rng.random() < self.chaos.fail_rate:
                ok = False
                with self._lock:
                    self._stats.forced_failures += 1
            self._count(endpoint, ok)
            if ok:
                if key not in self._done:
                    self._done.add(key)
                    self.delivered(event_id)
                return
            if not retry:
                return
        if key not in self._done:
            with self._lock:
                endpoint.stats.gave_up += 1

    async def _until(self, clock_due: float, real_due: float) -> None:
        """Sleep until the emulator clock reaches ``clock_due`` or ``time.monotonic()`` reaches
        ``real_due``, whichever is first."""
        token = object()
        with self._lock:
            self._waiting[id(token)] = (clock_due, real_due)
        try:
            while self.now() < clock_due:
                left = real_due - time.monotonic()
                if left <= 0 or self._clock_moved is None:
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._clock_moved.wait(), left)
        finally:
            with self._lock:
                del self._waiting[id(token)]

    async def _post(self, endpoint: EndpointState, body: bytes) -> bool:
        assert self._client is not None and self._gate is not None
        # Wait for a turn before signing: a queued delivery keeps a fresh timestamp and
        # does not spend its timeout in httpx's connection pool.
        async with self._gate:
            with self._lock:
                self._stats.attempts += 1
            if not endpoint.reachable:
                return False  # taken down: as a refused connection
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "User-Agent": USER_AGENT,
                       "Stripe-Signature": signature.sign(body, endpoint.endpoint.secrets,
                                                          int(time.time()))}
            try:
                response = await self._client.post(endpoint.url, content=body,
                                                   headers=headers)
            except httpx.HTTPError:
                return False
        return 200 <= response.status_code < 300

    def _count(self, endpoint: EndpointState, ok: bool) -> None:
        with self._lock:
            if ok:
                endpoint.stats.succeeded += 1
            else:
                endpoint.stats.failed += 1


def _object_id(event: dict[str, Any]) -> str:
    """The object whose events a reorder window holds together: a snapshot event's
    ``data.object``, a thin event's ``related_object``."""
    related = event.get("related_object") or {}
    return str(related.get("id") or (event.get("data") or {}).get("object", {}).get("id"))


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
