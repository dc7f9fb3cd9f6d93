"""PostgreSQL: the durable truth when one machine is not enough.

Any number of receivers and workers share one database. Batches are inserted with one
``unnest`` statement, workers claim with ``FOR UPDATE SKIP LOCKED`` so they never wait on each
other's rows, and a transaction-scoped advisory lock serializes the events of one Stripe object.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterable, Iterator, Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox import migrations
from ichido.inbox.base import Transaction
from ichido.inbox.sql import DUE, SqlInbox, first_of_each


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders (portable, and what handlers write) → psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgTransaction:
    """A handler's ``tx`` on PostgreSQL: same ``?`` SQL as on SQLite; ``connection`` is raw.

    In a pipelined batch, statements are sent without waiting for their replies; what a
    handler reads still reads as usual (fetching waits for the reply, and so does ``rowcount``).
    """

    def __init__(self, connection: psycopg.Connection,
                 pipeline: psycopg.Pipeline | None = None) -> None:
        self.connection = connection
        self.pipeline = pipeline

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._result(self.connection.execute(_pg_sql(sql), params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        cursor = self.connection.cursor()
        cursor.executemany(_pg_sql(sql), list(rows))
        return self._result(cursor)

    def _result(self, cursor: psycopg.Cursor) -> Any:
        return cursor if self.pipeline is None else _PipelinedCursor(cursor, self.pipeline)


class _PipelinedCursor:
    """A cursor whose ``rowcount`` waits for the statement's reply, as it would unpipelined
    (fetching and iterating wait by themselves)."""

    def __init__(self, cursor: psycopg.Cursor, pipeline: psycopg.Pipeline) -> None:
        self._cursor = cursor
        self._pipeline = pipeline

    @property
    def rowcount(self) -> int:
        self._pipeline.sync()
        return self._cursor.rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


# What a wrong schema step raises; OperationalError (connection lost, server shutting down)
# is about the server and stays "cannot reach".
_SCHEMA_ERRORS = (psycopg.ProgrammingError, psycopg.DataError, psycopg.IntegrityError,
                  psycopg.NotSupportedError, psycopg.InternalError)


class PostgresInbox(SqlInbox):
    engine_errors = (psycopg.Error,)

    def __init__(self, url: str, *, shard: str, pool_size: int = 4, migrate: bool = False,
                 steps: Sequence[migrations.Step] = (), connect_timeout: float = 5.0) -> None:
        super().__init__(shard=shard, steps=steps)
        self._connect_timeout = connect_timeout
        self._async_pool: AsyncConnectionPool | None = None
        self._async_pool_loop: asyncio.AbstractEventLoop | None = None
        self.pool = ConnectionPool(url, min_size=1, max_size=max(pool_size, 2), open=False,
                                   timeout=connect_timeout, name="ichido",
                                   kwargs={"connect_timeout": max(1, int(connect_timeout))})
        # Unreachable (503, retry later) and a failing step (fix the step) are told apart:
        # once the pool is open, an engine error comes from the schema, not the network.
        try:
            try:
                self.pool.open(wait=True, timeout=connect_timeout)
            except (psycopg.Error, PoolTimeout) as exc:
                raise StorageUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
            dialect = PostgresDialect(self.pool)
            try:
                if migrate:
                    migrations.apply(dialect, self.steps, errors=_SCHEMA_ERRORS)
                migrations.check(dialect, self.steps)
            except (PoolTimeout, psycopg.OperationalError) as exc:  # the server, not the SQL
                raise StorageUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
            except psycopg.Error as exc:  # outside a step: reading the applied versions
                raise migrations.failed(dialect.name, exc) from exc
        except BaseException:
            self.pool.close()  # also when the schema is behind: no pool left running
            raise

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.pool.connection() as conn:  # commits on exit, rolls back on an exception
            yield PgTransaction(conn)

    reading = transaction

    @contextmanager
    def _autocommit(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False

    @contextmanager
    def _statement(self) -> Iterator[Transaction]:
        with self._autocommit() as conn:
            yield PgTransaction(conn)

    @contextmanager
    def _batch(self, size: int) -> Iterator[Transaction]:
        """Several events: pipelined, so the handlers' writes go out without waiting for each
        other's replies (a statement's error shows at the next read; the worker then runs the
        batch again one event at a time, where nothing is pipelined and errors land on the event
        that caused them)."""
        if size < 2 or not psycopg.Pipeline.is_supported():  # libpq older than 14: no pipelines
            with self.transaction() as tx:
                yield tx
            return
        with self.pool.connection() as conn, conn.pipeline() as pipeline:
            yield PgTransaction(conn, pipeline)

    # Receiving: one statement, the insert and the counters together, run in autocommit (a
    # statement is atomic on its own). One round trip where BEGIN, INSERT, counters and COMMIT
    # were four, each waited for by every request in the batch.

    def accept(self, deliveries: Sequence[Delivery], *, cache_hits: int = 0) -> list[bool]:
        params = _accept_params(self.shard, deliveries, cache_hits)
        with self._storage("store deliveries"), self._autocommit() as conn:
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
            self._async_pool = AsyncConnectionPool(
                self.pool.conninfo, min_size=1, max_size=2, open=False, name="ichido-receiver",
                timeout=self._connect_timeout,
                kwargs={**self.pool.kwargs, "autocommit": True})
            self._async_pool_loop = loop
        await self._async_pool.open()  # a no-op once open; connects in the background
        return self._async_pool

    async def aclose(self) -> None:
        if self._async_pool is not None:
            pool, self._async_pool, self._async_pool_loop = self._async_pool, None, None
            await pool.close()

    def _claim_due(self, tx: Transaction, owner: str, limit: int, lease_until: float,
                   now: float) -> list[tuple]:
        rows = tx.execute(
            "UPDATE ichido_events e SET status = 'processing', attempts = e.attempts + 1,"
            " lease_token = e.lease_token + 1, lease_owner = ?, next_attempt_at = ?"
            f" FROM (SELECT id FROM ichido_events WHERE {DUE} AND next_attempt_at <= ?"
            "  ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED) due"
            " WHERE e.id = due.id"
            " RETURNING e.id, e.type, e.body, e.attempts, e.lease_token, e.object_id",
            (owner, lease_until, now, limit),
        ).fetchall()
        return [(r[0], r[1], bytes(r[2]), *r[3:]) for r in rows]

    def _lock_objects(self, tx: Transaction, object_ids: list[str]) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT"
                   " hashtextextended(o, 0) AS h FROM unnest(?::text[]) AS o ORDER BY h) AS s",
                   (object_ids,))

    def close(self) -> None:
        self.pool.close()


def _accept_params(shard: str, deliveries: Sequence[Delivery], cache_hits: int) -> dict[str, Any]:
    ordered = sorted(deliveries, key=lambda d: d.id)  # lock order: see SqlInbox
    return {"now": time.time(), "shard": shard, "misses": len(deliveries),
            "cache_hits": cache_hits, "ids": [d.id for d in ordered],
            "types": [d.type for d in ordered], "created": [d.created for d in ordered],
            "objects": [d.object_id for d in ordered], "bodies": [d.body for d in ordered]}


# %(bodies)b: the bodies travel as binary, not as hex text twice their size.
_ACCEPT = """
WITH new AS (
    INSERT INTO ichido_events (id, type, created, object_id, body, received_at, next_attempt_at)
    SELECT i, t, c, o, b, %(now)s, %(now)s
    FROM unnest(%(ids)s::text[], %(types)s::text[], %(created)s::bigint[], %(objects)s::text[],
                %(bodies)b::bytea[]) AS u(i, t, c, o, b)
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


class PostgresDialect:
    """What the migration runner needs from PostgreSQL; an advisory lock keeps two migrating
    processes from applying a step twice."""

    name = "PostgreSQL"
    _LOCK = 0x1C41D0  # arbitrary, constant: ichido's migration lock

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def current_version(self, component: str) -> int:
        with self.pool.connection() as conn:
            exists = conn.execute("SELECT to_regclass('ichido_schema')").fetchone()[0]
            if exists is None:
                return 0
            row = conn.execute("SELECT max(version) FROM ichido_schema WHERE component = %s",
                               (component,)).fetchone()
        return row[0] or 0

    def apply(self, component: str, version: int, statements: list[str]) -> None:
        with self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS ichido_schema (component TEXT NOT NULL,"
                         " version INTEGER NOT NULL, applied_at DOUBLE PRECISION NOT NULL,"
                         " PRIMARY KEY (component, version))")
            row = conn.execute("SELECT max(version) FROM ichido_schema WHERE component = %s",
                               (component,)).fetchone()
            if (row[0] or 0) < version:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO ichido_schema (component, version, applied_at)"
                             " VALUES (%s, %s, %s)", (component, version, time.time()))
