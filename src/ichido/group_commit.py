"""Group commit: the writes of concurrent requests share one durable commit.

Each request waits for the commit that holds its event (I1: 200 only after a durable write),
but a hundred requests arriving together cost one seen-tier look-up, one transaction and one
seen-tier update, not a hundred of each. With nothing in flight a lone request is written at
once: batching adds no delay, it only fills the time a commit takes anyway.

Everything is awaited on the event loop: the engines keep it free themselves (SQLite writes a
local file at once and waits for a busy lock on a thread of its own; PostgreSQL and Redis are
awaited on the loop's own connections).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Callable, Sequence

from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.base import Inbox
from ichido.seen.base import SeenCache
from ichido.metrics import METRICS

log = logging.getLogger("ichido.receiver")


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # new, now durable
    CACHE = "cache"  # duplicate caught by the seen tier
    DURABLE = "durable"  # duplicate caught by the inbox's unique key


class GroupCommit:
    def __init__(self, inbox: Inbox, seen: SeenCache, *, max_batch: int = 512,
                 in_flight: int = 2, on_stored: Callable[[], None] = lambda: None) -> None:
        self.inbox = inbox
        self.seen = seen
        self.max_batch = max_batch
        # Batches stored at once. Two: while one waits for its commit (a database round trip
        # and an fsync), the next is already on its way instead of queueing behind it.
        self.in_flight = in_flight
        self.on_stored = on_stored
        self._pending: list[tuple[Delivery, asyncio.Future[Outcome]]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._unlearned: list[str] = []  # durable ids the seen tier is still to learn

    async def submit(self, delivery: Delivery) -> Outcome:
        """Store ``delivery`` durably, or find it already known; never both lost and answered."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if len(self._flushers) < self.in_flight:
            flusher = asyncio.get_running_loop().create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await future

    async def close(self) -> None:
        await asyncio.gather(*self._flushers)
        if self._unlearned:
            await self.seen.add_async(self._unlearned)
        await self.inbox.aclose()
        await self.seen.aclose()

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            METRICS.batch_size.observe(len(batch))
            try:
                outcomes = await self.store([delivery for delivery, _ in batch])
            except Exception as exc:  # any storage failure: the senders get 503 and retry
                if not isinstance(exc, StorageUnavailable):
                    log.exception("storing %d deliveries failed", len(batch))
                    exc = StorageUnavailable(f"storage failed: {type(exc).__name__}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes):
                if not future.done():  # the client may have gone away meanwhile
                    future.set_result(outcome)
            _count(outcomes)
            if Outcome.ACCEPTED in outcomes:
                self.on_stored()

    async def store(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """One batch: seen tier, then one durable commit, then the seen tier (what each
        request waits for; the benchmarks time it directly)."""
        learn, self._unlearned = self._unlearned, []
        cached = await self.seen.seen_async([d.id for d in deliveries], learn=learn)
        misses = [d for d in deliveries if d.id not in cached]
        accepted = iter(await self.inbox.accept_async(
            misses, cache_hits=len(deliveries) - len(misses)))
        # Only now are these ids durable, so only now may the seen tier learn them (I3): with
        # the next batch's look-up when one is waiting (one round trip for both), else now.
        if self._pending:
            self._unlearned.extend(d.id for d in misses)
        else:
            await self.seen.add_async([d.id for d in misses])
        return [Outcome.CACHE if d.id in cached
                else Outcome.ACCEPTED if next(accepted) else Outcome.DURABLE
                for d in deliveries]


def _count(outcomes: list[Outcome]) -> None:
    """Metrics once per batch, not per request: a labelled counter costs microseconds."""
    METRICS.received.inc(len(outcomes))
    for tier in (Outcome.CACHE, Outcome.DURABLE):
        if n := outcomes.count(tier):
            METRICS.duplicates.labels(tier.value).inc(n)
