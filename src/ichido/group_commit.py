"""Group commit: the writes of concurrent requests share one durable commit.

Each request waits for the commit that holds its event (I1: 200 only after a durable write),
but a hundred requests arriving together cost one seen-tier look-up, one transaction and one
seen-tier update, not a hundred of each. With nothing in flight a lone request is written at
once: batching adds no delay, it only fills the time a commit takes anyway.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.base import Inbox, SeenCache
from ichido.metrics import METRICS

log = logging.getLogger("ichido.receiver")


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # new, now durable
    CACHE = "cache"  # duplicate caught by the seen tier
    DURABLE = "durable"  # duplicate caught by the inbox's unique key


class GroupCommit:
    def __init__(self, inbox: Inbox, seen: SeenCache, *, max_batch: int = 512,
                 on_stored: Callable[[], None] = lambda: None) -> None:
        self.inbox = inbox
        self.seen = seen
        self.max_batch = max_batch
        self.on_stored = on_stored
        self._pending: list[tuple[Delivery, asyncio.Future[Outcome]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # One thread owns the writes: SQLite connections are per thread, and one writer at a
        # time is what a single durable log wants anyway.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ichido-accept")

    async def submit(self, delivery: Delivery) -> Outcome:
        """Store ``delivery`` durably, or find it already known; never both lost and answered."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
        self._executor.shutdown(wait=True)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                METRICS.batch_size.observe(len(batch))
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, self._store, [delivery for delivery, _ in batch])
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
                if Outcome.ACCEPTED in outcomes:
                    self.on_stored()
        finally:
            self._flusher = None

    def _store(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Runs on the writer thread: seen tier, then one durable commit, then the seen tier."""
        cached = self.seen.seen([d.id for d in deliveries])
        misses = [d for d in deliveries if d.id not in cached]
        accepted = iter(self.inbox.accept(misses, cache_hits=len(deliveries) - len(misses)))
        # Only now are these ids durable, so only now may the seen tier learn them (I3).
        self.seen.add([d.id for d in misses])
        return [Outcome.CACHE if d.id in cached
                else Outcome.ACCEPTED if next(accepted) else Outcome.DURABLE
                for d in deliveries]
