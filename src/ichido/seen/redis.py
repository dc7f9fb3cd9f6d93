"""The seen tier on Redis, shared by every receiver: ``MGET`` to look, ``SET NX EX`` to learn
(one script call per batch).

It is only a hint (I3): when Redis is down, flushed or slow, every look-up is a miss and the
durable inbox catches the duplicates instead. Timeouts are short and a failure mutes Redis for a
moment, so an outage costs a few milliseconds once, not on every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Sequence

import redis
import redis.asyncio

from ichido.seen.base import SeenCache

log = logging.getLogger("ichido.seen")


class RedisSeenCache(SeenCache):
    shared = True

    def __init__(self, url: str, ttl_seconds: float, *, prefix: str,
                 timeout: float = 0.25, mute_seconds: float = 2.0) -> None:
        self.url, self.timeout = url, timeout
        self.client = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)
        self._loop_client: redis.asyncio.Redis | None = None  # the receiver's, on its loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ttl = max(1, int(ttl_seconds))
        self.prefix = prefix
        self._prefix = prefix.encode()
        self.mute_seconds = mute_seconds
        self._muted_until = 0.0
        self._learn = self.client.register_script(_LEARN_AND_LOOK_UP)
        self._sha = self._learn.sha

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
            self._learn(keys=[self.prefix + i for i in event_ids], args=[self.ttl, len(event_ids)])
        except redis.RedisError as exc:
            self._mute(exc)

    async def seen_async(self, event_ids: Sequence[str], *,
                         learn: Sequence[str] = ()) -> set[str]:
        if not event_ids and not learn or self._muted():
            return set()
        prefix = self._prefix  # keys as bytes: redis-py encodes a str in ~1 µs, a bytes in 0.1
        keys = [prefix + i.encode() for i in learn]
        keys += [prefix + i.encode() for i in event_ids]
        try:
            # The whole call bounded here, not each socket operation: redis-py's own socket
            # timeout wraps every send in a task (asyncio.wait_for), and retries on top.
            async with asyncio.timeout(self.timeout):
                values = await self._script(keys, len(learn))
        except redis.RedisError as exc:
            self._mute(exc)
            return set()
        except TimeoutError:
            self._mute(f"no answer within {self.timeout:g} s")
            return set()
        return {i for i, value in zip(event_ids, values) if value is not None}

    async def add_async(self, event_ids: Sequence[str]) -> None:
        await self.seen_async((), learn=event_ids)

    async def _script(self, keys: list[bytes], learn: int) -> Any:
        """The learn-and-look-up script, on a client of the running loop (an asyncio client's
        connections belong to one loop); loaded again if Redis lost it (a restart, a SCRIPT
        FLUSH), as redis-py's Script does."""
        loop = asyncio.get_running_loop()
        if self._loop_client is None or self._loop is not loop:
            self._loop_client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=None, socket_connect_timeout=self.timeout)
            self._loop = loop
        client = self._loop_client
        try:
            return await client.execute_command("EVALSHA", self._sha, len(keys), *keys,
                                                self.ttl, learn)
        except redis.exceptions.NoScriptError:
            return await client.execute_command("EVAL", _LEARN_AND_LOOK_UP, len(keys), *keys,
                                                self.ttl, learn)

    async def aclose(self) -> None:
        if self._loop_client is not None:
            client, self._loop_client, self._loop = self._loop_client, None, None
            await client.aclose()

    def clear(self) -> None:
        """Forget this tier's keys (not the whole Redis: it may be shared)."""
        for keys in _batches(self.client.scan_iter(match=self.prefix + "*", count=1000), 1000):
            self.client.delete(*keys)

    def close(self) -> None:
        self.client.close()

    def _muted(self) -> bool:
        return time.monotonic() < self._muted_until

    def _mute(self, exc: Exception | str) -> None:
        log.warning("Redis seen tier unavailable, using the durable tier alone for %.0f s: %s",
                    self.mute_seconds, exc)
        self._muted_until = time.monotonic() + self.mute_seconds


# One command for a whole batch: a pipeline of SETs costs the client ~8 µs per key to encode,
# this ~2 µs. (redis-py's Script sends it again after a SCRIPT FLUSH or a restart.)
# KEYS: the ids to learn (ARGV[2] of them), then the ids to look up; ARGV[1]: the TTL.
_LEARN_AND_LOOK_UP = """
local learn = tonumber(ARGV[2])
for i = 1, learn do redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) end
if #KEYS == learn then return {} end
return redis.call('MGET', unpack(KEYS, learn + 1))
"""


def _batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
