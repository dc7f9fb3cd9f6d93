"""The seen tier on Redis, shared by every receiver: ``MGET`` to look, ``SET NX EX`` to learn.

It is only a hint (I3): when Redis is down, flushed or slow, every look-up is a miss and the
durable inbox catches the duplicates instead. Timeouts are short and a failure mutes Redis for a
moment, so an outage costs a few milliseconds once, not on every request.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import redis

from ichido.inbox.base import SeenCache

log = logging.getLogger("ichido.seen")


class RedisSeenCache(SeenCache):
    def __init__(self, url: str, ttl_seconds: float, *, prefix: str,
                 timeout: float = 0.25, mute_seconds: float = 2.0) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)
        self.ttl = max(1, int(ttl_seconds))
        self.prefix = prefix
        self.mute_seconds = mute_seconds
        self._muted_until = 0.0

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids or self._muted():
            return set()
        try:
            values = self.client.mget([self.prefix + i for i in event_ids])
        except redis.RedisError as exc:
            self._mute(exc)
            return set()
        return {i for i, value in zip(event_ids, values) if value is not None}

    def add(self, event_ids: Sequence[str]) -> None:
        if not event_ids or self._muted():
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for event_id in event_ids:
                    pipe.set(self.prefix + event_id, b"1", nx=True, ex=self.ttl)
                pipe.execute()
        except redis.RedisError as exc:
            self._mute(exc)

    def clear(self) -> None:
        """Forget this tier's keys (not the whole Redis: it may be shared)."""
        for keys in _batches(self.client.scan_iter(match=self.prefix + "*", count=1000), 1000):
            self.client.delete(*keys)

    def close(self) -> None:
        self.client.close()

    def _muted(self) -> bool:
        return time.monotonic() < self._muted_until

    def _mute(self, exc: Exception) -> None:
        log.warning("Redis seen tier unavailable, using the durable tier alone for %.0f s: %s",
                    self.mute_seconds, exc)
        self._muted_until = time.monotonic() + self.mute_seconds


def _batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
