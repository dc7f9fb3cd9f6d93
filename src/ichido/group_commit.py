"""Group commit: the writes of concurrent requests share one durable commit.

Each request waits for the commit that holds its event (I1 in docs/invariants.md: 200 only
after a durable write), but a hundred requests arriving together cost one seen-tier look-up, one
transaction and one seen-tier update, not a hundred of each. With nothing in flight a lone
request is written at once: batching adds no delay, it only fills the time a commit takes anyway.

Everything is awaited on the event loop: the engines keep it free themselves (SQLite writes a
local file at once and waits for a busy lock on a thread of its own; PostgreSQL and Redis are
awaited on the loop's own connections).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Callable, Protocol, Sequence

from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.seen.base import SeenCache
from ichido.metrics import METRICS

log = logging.getLogger("ichido.receiver")


class DurableWrite(Protocol):
    """What the receiver writes to: the inbox, or on AWS the queue or the Streams table."""

    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        """Store what is new, durably, before returning; True per delivery it stored."""

    def durable_among(self, event_ids: Sequence[str]) -> set[str] | None:
        """Which ids this store holds, when it can tell at once; None when it cannot."""

    async def aclose(self) -> None:
        """Release what ``accept_async`` holds on the running event loop."""


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # new, now durable
    CACHE = "cache"  # duplicate caught by the seen tier
    DURABLE = "durable"  # duplicate caught by the inbox's unique key


class Waiter(Protocol):
    """Who waits for a delivery's outcome: an ``asyncio.Future`` (``submit``), or the server's
    fast path (ichido.serving), which answers from these calls instead of from a task."""

    def done(self) -> bool: ...

    def set_result(self, result: Outcome, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class GroupCommit:
    def __init__(self, inbox: DurableWrite, seen: SeenCache, *, max_batch: int = 512,
                 in_flight: int = 2, on_stored: Callable[[], None] = lambda: None,
                 shutdown_timeout: float = 10.0) -> None:
        self.inbox = inbox
        self.seen = seen
        self.max_batch = max_batch
        # Batches stored at once. Two: while one waits for its commit (a database round trip
        # and an fsync), the next is already on its way instead of queueing behind it.
        self.in_flight = in_flight
        self.on_stored = on_stored
        self.shutdown_timeout = shutdown_timeout
        self._pending: list[tuple[Delivery, Waiter]] = []
        # A flusher is in this set exactly as long as it will look at ``_pending`` again: it
        # removes itself in the same step in which it finds ``_pending`` empty, so a delivery
        # submitted at any moment either finds a flusher that will take it or starts one.
        self._flushers: set[asyncio.Task[None]] = set()
        self._unlearned: list[str] = []  # durable ids the seen tier is still to learn
        self._closing = False
        # (monotonic time, reason) of the last batch the store refused; None once one is stored
        self.last_failure: tuple[float, str] | None = None

    async def submit(self, delivery: Delivery) -> Outcome:
        """Store ``delivery`` durably, or find it already known; never both lost and answered."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.enqueue(delivery, future)
        return await future

    def enqueue(self, delivery: Delivery, waiter: Waiter) -> None:
        """``submit`` without waiting: ``waiter`` is given the outcome (or the error) once the
        delivery's batch is stored. Called on the event loop."""
        if self._closing:
            raise StorageUnavailable("the receiver is shutting down", code="shutting_down")
        self._pending.append((delivery, waiter))
        self._start_flusher()

    def _start_flusher(self) -> None:
        if self._pending and len(self._flushers) < self.in_flight:
            self._flushers.add(asyncio.get_running_loop().create_task(self._flush()))

    async def close(self) -> None:
        """Finish what is pending within ``shutdown_timeout``, else fail it loudly: its senders
        get 503 (Stripe retries), and the log says how many were not stored."""
        self._closing = True
        self._start_flusher()  # nothing is ever left without a flusher, but be sure
        if self._flushers:
            _, late = await asyncio.wait(set(self._flushers), timeout=self.shutdown_timeout)
            if late or self._pending:
                waiting = len(self._pending)
                for flusher in late:
                    flusher.cancel()
                await asyncio.gather(*late, return_exceptions=True)
                self._fail(self._pending, StorageUnavailable(
                    "the receiver shut down before storing this delivery", code="shutting_down"))
                self._pending = []
                log.error("shutdown: storage did not finish within %g s; %d batch(es) in flight "
                          "and %d queued deliveries were answered 503, not stored (Stripe "
                          "retries them)", self.shutdown_timeout, len(late), waiting)
        if self._unlearned:
            await self.seen.add_async(self._unlearned)
        await self.inbox.aclose()
        await self.seen.aclose()

    async def _flush(self) -> None:
        me = asyncio.current_task()
        try:
            while self._pending:
                batch, self._pending = (self._pending[: self.max_batch],
                                        self._pending[self.max_batch :])
                await self._flush_batch(batch)
        finally:  # no await between the emptiness check above and this: atomic on the loop
            self._flushers.discard(me)

    async def _flush_batch(self, batch: list[tuple[Delivery, Waiter]]) -> None:
        METRICS.batch_size.observe(len(batch))
        try:
            try:
                outcomes = await self.store([delivery for delivery, _ in batch])
            except Exception as exc:  # any storage failure: the senders get 503 and retry
                self.last_failure = (time.monotonic(), exc.message if isinstance(
                    exc, StorageUnavailable) else f"storage failed: {type(exc).__name__}")
                if len(batch) > 1:
                    await self._flush_singly(batch, exc)
                else:
                    self._fail(batch, _unavailable(exc, 1))
                return
            self._answer(batch, outcomes)
        except asyncio.CancelledError:  # at shutdown: nobody may wait for an answer never sent
            self._fail(batch, StorageUnavailable("the receiver shut down before storing this "
                                                 "delivery", code="shutting_down"))
            raise

    async def _flush_singly(self, batch: list[tuple[Delivery, Waiter]],
                            batch_error: Exception) -> None:
        """One row the store refuses must not fail its neighbours (I5 at ingest): retry each
        alone. Two failures before any success look like an outage, not a bad row: the rest
        get 503 at once instead of one more doomed round trip each."""
        failures = successes = 0
        for index, (delivery, future) in enumerate(batch):
            if failures >= 2 and not successes:
                self._fail(batch[index:], _unavailable(batch_error, len(batch)))
                return
            try:
                outcomes = await self.store([delivery])
            except Exception as exc:
                failures += 1
                self._fail([(delivery, future)], _unavailable(exc, 1))
                continue
            successes += 1
            self._answer([(delivery, future)], outcomes)

    def _answer(self, batch: list[tuple[Delivery, Waiter]],
                outcomes: list[Outcome]) -> None:
        for (_, future), outcome in zip(batch, outcomes):
            if not future.done():  # the client may have gone away meanwhile
                future.set_result(outcome)
        _count(outcomes)
        if Outcome.ACCEPTED in outcomes:
            self.on_stored()

    @staticmethod
    def _fail(batch: Sequence[tuple[Delivery, Waiter]], exc: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    async def store(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """One batch: seen tier, then one durable commit, then the seen tier (what each
        request waits for; the benchmarks time it directly)."""
        learn, self._unlearned = self._unlearned, []
        cached = await self.seen.seen_async([d.id for d in deliveries], learn=learn)
        if cached and self.seen.shared:  # it may speak only for ids durable HERE (I3)
            durable = self.inbox.durable_among(list(cached))
            if durable is not None:
                cached &= durable
        misses = [d for d in deliveries if d.id not in cached]
        accepted = iter(await self.inbox.accept_async(
            misses, cache_hits=len(deliveries) - len(misses)))
        self.last_failure = None
        # Only now are these ids durable, so only now may the seen tier learn them (I3): with
        # the next batch's look-up when one is waiting (one round trip for both), else now.
        if self._pending:
            self._unlearned.extend(d.id for d in misses)
        else:
            await self.seen.add_async([d.id for d in misses])
        return [Outcome.CACHE if d.id in cached
                else Outcome.ACCEPTED if next(accepted) else Outcome.DURABLE
                for d in deliveries]


def _unavailable(exc: Exception, count: int) -> StorageUnavailable:
    if isinstance(exc, StorageUnavailable):
        return exc
    log.error("storing %d deliveries failed", count, exc_info=exc)
    return StorageUnavailable(f"storage failed: {type(exc).__name__}")


def _count(outcomes: list[Outcome]) -> None:
    """Metrics once per batch, not per request: a labelled counter costs microseconds."""
    METRICS.received.inc(len(outcomes))
    for tier in (Outcome.CACHE, Outcome.DURABLE):
        if n := outcomes.count(tier):
            METRICS.duplicates.labels(tier.value).inc(n)
