"""The straightforward design on the same stack: one storage round trip per request, no batching.

What a careful team writes first: a Starlette route on uvicorn (httptools, uvloop, one process,
the same settings as ``ichido serve``) that verifies the signature with ``hmac`` (ichido's own
``signature.verify``), parses with orjson, and stores the event before answering 200:

- ``sqlite``: ``INSERT … ON CONFLICT (id) DO NOTHING`` on one WAL connection
  (``synchronous=NORMAL``, as ichido), autocommit: one commit per request, run inline on the event
  loop (``BASELINE_SQLITE_MODE=thread`` runs it on one writer thread instead, as ichido does).
- ``postgres+redis``: Redis ``SET NX EX`` on the event id (a duplicate ends there), then one
  autocommit ``INSERT … ON CONFLICT DO NOTHING`` on PostgreSQL (psycopg async pool, 8
  connections as ichido's default). Note the flaw the design brief warns of: the id is in Redis
  before the row is durable, so a crash in between loses the event on redelivery.

``BASELINE_HANDLER=1`` also applies the effect inline, in the same transaction as the insert (a
row in ``effects``): the "process inside the HTTP request" design, for ``e2e`` and ``peers``.

Configured by the environment: ``BASELINE_DATABASE_URL`` (``sqlite:///…`` or ``postgresql://…``),
``BASELINE_REDIS_URL`` (with PostgreSQL), ``STRIPE_WEBHOOK_SECRET``. Serve it with
``python -m bench baseline --port 8002``; it is a comparison server, not a benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.processes import serve_asgi, server_port_arg
from ichido import signature
from ichido.errors import SignatureError

EVENTS_SQL = ("CREATE TABLE IF NOT EXISTS baseline_events (id TEXT PRIMARY KEY, type TEXT NOT NULL,"
              " created BIGINT NOT NULL, object_id TEXT, body {blob} NOT NULL,"
              " received_at DOUBLE PRECISION NOT NULL)")
EFFECTS_SQL = ("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL, type TEXT NOT NULL,"
               " attempt INTEGER NOT NULL)")
TTL = 73 * 3600


class SqliteStore:
    def __init__(self, url: str, handler: bool, mode: str) -> None:
        self.conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None,
                                    check_same_thread=False)
        for pragma in ("PRAGMA busy_timeout = 10000", "PRAGMA journal_mode = WAL",
                       "PRAGMA synchronous = NORMAL"):
            self.conn.execute(pragma)
        self.conn.execute(EVENTS_SQL.format(blob="BLOB"))
        self.conn.execute(EFFECTS_SQL)
        self.handler = handler
        self.executor = ThreadPoolExecutor(1) if mode == "thread" else None

    def _store(self, event_id: str, type_: str, created: int, object_id: str | None,
               body: bytes) -> bool:
        insert = ("INSERT INTO baseline_events (id, type, created, object_id, body, received_at)"
                  " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
        params = (event_id, type_, created, object_id, body, time.time())
        if not self.handler:
            return self.conn.execute(insert, params).rowcount == 1
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            new = self.conn.execute(insert, params).rowcount == 1
            if new:
                self.conn.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, 1)",
                                  (event_id, type_))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return new

    async def store(self, *args: Any) -> bool:
        if self.executor is None:
            return self._store(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._store, *args)

    async def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()
        self.conn.close()


class PostgresRedisStore:
    def __init__(self, url: str, redis_url: str | None, handler: bool) -> None:
        self.url, self.redis_url, self.handler = url, redis_url, handler

    async def open(self) -> None:
        import psycopg
        import redis.asyncio as aioredis
        from psycopg_pool import AsyncConnectionPool

        self.redis = aioredis.Redis.from_url(self.redis_url) if self.redis_url else None
        self.prefix = f"bench:baseline:{os.getpid()}:{time.time_ns()}:"
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(EVENTS_SQL.format(blob="BYTEA"))
            await conn.execute(EFFECTS_SQL)
        self.pool = AsyncConnectionPool(self.url, min_size=8, max_size=8, open=False,
                                        kwargs={"autocommit": True})
        await self.pool.open(wait=True)

    async def store(self, event_id: str, type_: str, created: int, object_id: str | None,
                    body: bytes) -> bool:
        if self.redis is not None:
            if not await self.redis.set(self.prefix + event_id, b"1", nx=True, ex=TTL):
                return False
        insert = ("INSERT INTO baseline_events (id, type, created, object_id, body, received_at)"
                  " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING")
        params = (event_id, type_, created, object_id, body, time.time())
        async with self.pool.connection() as conn:
            if not self.handler:
                return (await conn.execute(insert, params)).rowcount == 1
            async with conn.transaction():
                new = (await conn.execute(insert, params)).rowcount == 1
                if new:
                    await conn.execute("INSERT INTO effects (event_id, type, attempt)"
                                       " VALUES (%s, %s, 1)", (event_id, type_))
            return new

    async def close(self) -> None:
        await self.pool.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                keys = [k async for k in self.redis.scan_iter(match=self.prefix + "*", count=1000)]
                for start in range(0, len(keys), 1000):
                    await self.redis.delete(*keys[start:start + 1000])
            await self.redis.aclose()


def create_app() -> Starlette:
    url = os.environ["BASELINE_DATABASE_URL"]
    secrets = tuple(s for s in os.environ["STRIPE_WEBHOOK_SECRET"].split(",") if s)
    handler = os.environ.get("BASELINE_HANDLER", "0") == "1"
    state: dict[str, Any] = {}

    async def webhook(request: Request) -> Response:
        body = await request.body()
        try:
            signature.verify(body, request.headers.get("stripe-signature"), secrets,
                             tolerance=300)
        except SignatureError as exc:
            return JSONResponse({"error": exc.code}, status_code=400)
        try:
            doc = orjson.loads(body)
            event_id, type_, created = doc["id"], doc["type"], doc["created"]
            object_id = (doc.get("data") or {}).get("object", {}).get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": "malformed"}, status_code=400)
        new = await state["store"].store(event_id, type_, created, object_id, body)
        return JSONResponse({"id": event_id, "status": "accepted" if new else "duplicate"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        if url.startswith("sqlite"):
            state["store"] = SqliteStore(url, handler, os.environ.get("BASELINE_SQLITE_MODE",
                                                                      "inline"))
        else:
            store = PostgresRedisStore(url, os.environ.get("BASELINE_REDIS_URL") or None, handler)
            await store.open()
            state["store"] = store
        try:
            yield
        finally:
            await state["store"].close()

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/webhooks/stripe", webhook, methods=["POST"]),
                             Route("/", health)], lifespan=lifespan)


def main(argv: list[str]) -> int:
    serve_asgi(create_app(), server_port_arg("baseline", argv))
    return 0
