"""The inbox on PostgreSQL: a batch of deliveries is one statement, counters included.

Any number of receivers share one server; the receiver's loop awaits its own async pool.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ichido.db.postgres import PostgresDatabase
from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.sql import SqlInbox, first_of_each


class PostgresInbox(SqlInbox):
    database: PostgresDatabase

    def __init__(self, database: PostgresDatabase, *, shard: str) -> None:
        super().__init__(database, shard=shard)
        self._async_pool: AsyncConnectionPool | None = None
        self._async_pool_loop: asyncio.AbstractEventLoop | None = None

    # Receiving: one statement, the insert and the counters together, run in autocommit (a
    # statement is atomic on its own). One round trip where BEGIN, INSERT, counters and COMMIT
    # were four, each waited for by every request in the batch.

    def accept(self, deliveries: Sequence[Delivery], *, cache_hits: int = 0) -> list[bool]:
        params = _accept_params(self.shard, deliveries, cache_hits)
        with self.database.storage("store deliveries"), self.database.autocommit() as conn:
            rows = conn.execute(_ACCEPT, params).fetchall()
        return first_of_each(deliveries, {row[0] for row in rows})

    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        """On the event loop's own connections: a writer thread would cost a GIL hand-off per
        round trip, each up to the interpreter's 5 ms switch interval while the loop is busy."""
        params = _accept_params(self.shard, deliveries, cache_hits)
        try:
            pool = await self._loop_pool()
            async with pool.connection() as conn:
                rows = await (await conn.execute(_ACCEPT, params)).fetchall()
        except (psycopg.Error, PoolTimeout) as exc:
            raise StorageUnavailable(f"could not store deliveries: {exc}") from exc
        return first_of_each(deliveries, {row[0] for row in rows})

    async def _loop_pool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        if self._async_pool is None or self._async_pool_loop is not loop:
            pool = self.database.pool
            pool_kwargs = pool.kwargs if isinstance(pool.kwargs, dict) else {}  # ours is a dict
            self._async_pool = AsyncConnectionPool(
                pool.conninfo, min_size=1, max_size=2, open=False, name="ichido-receiver",
                timeout=self.database.connect_timeout, kwargs={**pool_kwargs, "autocommit": True},
                configure=_compress_with_lz4)
            self._async_pool_loop = loop
        await self._async_pool.open()  # a no-op once open; connects in the background
        return self._async_pool

    async def aclose(self) -> None:
        if self._async_pool is not None:
            pool, self._async_pool, self._async_pool_loop = self._async_pool, None, None
            await pool.close()


async def _compress_with_lz4(conn: psycopg.AsyncConnection[Any]) -> None:
    """Bodies (2-3 KB) pass PostgreSQL's TOAST threshold and are compressed as they are stored:
    with its default pglz that was a third of the receiver's backend's CPU, with lz4 a few
    percent (and reading them back is faster too). A column created without a compression
    method takes the session's ``default_toast_compression`` when a value is stored, so this
    changes no schema and leaves every stored value readable. Before PostgreSQL 14, or a server
    built without lz4, the session keeps pglz."""
    if conn.info.server_version < 140000:
        return
    try:
        await conn.execute("SET default_toast_compression = 'lz4'")
    except psycopg.Error:
        pass


def _accept_params(shard: str, deliveries: Sequence[Delivery], cache_hits: int) -> dict[str, Any]:
    """The batch as two values, not five arrays: psycopg dumps an array element by element in
    Python (about 100 µs for 20 deliveries, 5 µs a request), one JSON text and one binary
    string cost a few microseconds. Each row says where its body is in ``bodies``."""
    ordered = sorted(deliveries, key=lambda d: d.id)  # lock order: see SqlInbox
    rows = []
    start = 1  # substring() counts from 1
    for d in ordered:
        size = len(d.body)
        rows.append({"i": d.id, "t": d.type, "c": d.created, "o": d.object_id, "s": start,
                     "n": size})
        start += size
    return {"now": time.time(), "shard": shard, "misses": len(deliveries),
            "cache_hits": cache_hits, "rows": orjson.dumps(rows).decode(),
            "bodies": b"".join([d.body for d in ordered])}


# %(bodies)b: the bodies travel as binary, not as hex text twice their size.
_ACCEPT = """
WITH new AS (
    INSERT INTO ichido_events (id, type, created, object_id, body, received_at, next_attempt_at)
    SELECT i, t, c, o, substring(%(bodies)b::bytea FROM s FOR n), %(now)s, %(now)s
    FROM json_to_recordset(%(rows)s::json) AS u(i text, t text, c bigint, o text, s int, n int)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), counted AS (
    INSERT INTO ichido_counters (shard, name, value)
    SELECT %(shard)s, name, value FROM (VALUES
        ('received', %(misses)s::bigint + %(cache_hits)s::bigint),
        ('unique', (SELECT count(*) FROM new)),
        ('duplicates_cache', %(cache_hits)s::bigint),
        ('duplicates_durable', %(misses)s::bigint - (SELECT count(*) FROM new))
    ) AS c(name, value) WHERE value <> 0
    ON CONFLICT (shard, name) DO UPDATE SET value = ichido_counters.value + excluded.value
)
SELECT id FROM new
"""
