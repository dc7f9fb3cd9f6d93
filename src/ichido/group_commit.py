"""Group commit: the writes of concurrent requests share one durable commit.

Each request waits for the commit that holds its event (I1: 200 only after a durable write),
but a hundred requests arriving together cost one transaction, not a hundred. With nothing in
flight a lone request is written at once: batching adds no delay, it only fills the time a
commit takes anyway.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable

from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.base import Inbox, SeenCache

log = logging.getLogger("ichido.receiver")


class GroupCommit:
    def __init__(self, inbox: Inbox, seen: SeenCache, *, max_batch: int = 512,
                 on_stored: Callable[[], None] = lambda: None,
                 hit_flush_seconds: float = 1.0) -> None:
        self.inbox = inbox
        self.seen = seen
        self.max_batch = max_batch
        self.on_stored = on_stored
        self.hit_flush_seconds = hit_flush_seconds
        self._pending: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._cache_hits = 0
        self._flusher: asyncio.Task[None] | None = None
        self._hit_timer: asyncio.TimerHandle | None = None
        # One thread owns the writes: SQLite connections are per thread, and one writer at a
        # time is what a single durable log wants anyway.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ichido-accept")

    async def submit(self, delivery: Delivery) -> bool:
        """Store ``delivery`` durably; True if it was new, False if the inbox had it already."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        self._start_flusher()
        return await future

    def count_cache_hit(self) -> None:
        """A duplicate the seen tier caught; counted durably with the next commit."""
        self._cache_hits += 1
        if self._hit_timer is None and self._flusher is None:
            loop = asyncio.get_running_loop()
            self._hit_timer = loop.call_later(self.hit_flush_seconds, self._start_flusher)

    async def close(self) -> None:
        """Finish what is queued (including the cache-hit count), then stop the writer thread."""
        self._start_flusher()
        if self._flusher is not None:
            await self._flusher
        self._executor.shutdown(wait=True)

    def _start_flusher(self) -> None:
        if self._hit_timer is not None:
            self._hit_timer.cancel()
            self._hit_timer = None
        if self._flusher is None and (self._pending or self._cache_hits):
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending or self._cache_hits:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                hits, self._cache_hits = self._cache_hits, 0
                deliveries = [delivery for delivery, _ in batch]
                try:
                    accepted = await loop.run_in_executor(
                        self._executor, partial(self.inbox.accept, deliveries, cache_hits=hits))
                except Exception as exc:  # any storage failure: the senders get 503 and retry
                    if not isinstance(exc, StorageUnavailable):
                        log.exception("storing %d deliveries failed", len(batch))
                        exc = StorageUnavailable(f"storage failed: {type(exc).__name__}")
                    self._cache_hits += hits
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not batch:  # only counts were due: try them again later
                        log.warning("could not store cache-hit counts: %s", exc)
                        break
                    continue
                # Only now are these ids durable, so only now may the seen tier know them (I3).
                self.seen.add([d.id for d in deliveries])
                for (_, future), new in zip(batch, accepted):
                    if not future.done():  # the client may have gone away meanwhile
                        future.set_result(new)
                if any(accepted):
                    self.on_stored()
        finally:
            self._flusher = None
            if self._pending:
                self._start_flusher()
