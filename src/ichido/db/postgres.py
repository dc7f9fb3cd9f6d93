"""PostgreSQL: the database when one machine is not enough.

Any number of receivers and workers share one server through a connection pool. Handlers write
the same ``?`` SQL as on SQLite (``_pg_sql`` says which ``?`` is a placeholder: not one in text,
nor jsonb's ``?|``/``?&``; ``??`` is jsonb's ``?``); a worker's batch is pipelined; a
transaction-scoped advisory lock serializes the events of one Stripe object.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterable, Iterator, Sequence

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ichido.db import migrations
from ichido.db.base import Transaction
from ichido.db.sql import SqlDatabase
from ichido.errors import StorageUnavailable


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_0-9$\x80-\uffff]")


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders (portable, and what handlers write) → psycopg's ``%s``.

    PostgreSQL's lexical rules decide what is code: a ``?`` inside a string literal ('…',
    E'…', $tag$…$tag$), a quoted identifier ("…") or a comment (-- …, /* … */, nested) is
    text. In code, ``?|`` and ``?&`` are jsonb operators (but ``?||`` is a placeholder before
    the ``||`` operator), and ``??`` stands for a literal ``?`` (jsonb's key-exists operator),
    as in PgJDBC. Every ``%`` is doubled: psycopg reads the whole string for its own markers.
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _WORD.match(sql[i - 2]))
            end = _quoted_end(sql, i, "'", backslash=escapes)
        elif c == '"':
            end = _quoted_end(sql, i, '"', backslash=False)
        elif c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
        elif c == "/" and sql.startswith("/*", i):
            end = _comment_end(sql, i)
        elif c == "$" and (i == 0 or not _WORD.match(sql[i - 1])) and (
                tag := _DOLLAR_TAG.match(sql, i)):
            close = sql.find(tag.group(), tag.end())
            end = n if close < 0 else close + len(tag.group())
        elif c == "?":
            nxt = sql[i + 1 : i + 2]
            if nxt == "?":
                out.append("?")
                i += 2
            elif nxt == "&" or (nxt == "|" and sql[i + 2 : i + 3] != "|"):
                out.append("?" + nxt)
                i += 2
            else:
                out.append("%s")
                i += 1
            continue
        else:
            out.append("%%" if c == "%" else c)
            i += 1
            continue
        out.append(sql[i:end].replace("%", "%%"))
        i = end
    return "".join(out)


def _quoted_end(sql: str, start: int, quote: str, *, backslash: bool) -> int:
    """The index after the closing quote (a doubled quote, or \\' in E'…', is part of it)."""
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
        elif c == quote:
            if sql[i + 1 : i + 2] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _comment_end(sql: str, start: int) -> int:
    depth, i, n = 0, start, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


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


class PostgresDatabase(SqlDatabase):
    engine = "postgresql"
    engine_errors = (psycopg.Error,)
    # What a wrong schema step raises; OperationalError (connection lost, server shutting down)
    # is about the server and stays "cannot reach".
    schema_errors = (psycopg.ProgrammingError, psycopg.DataError, psycopg.IntegrityError,
                     psycopg.NotSupportedError, psycopg.InternalError)

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout: float = 5.0) -> None:
        super().__init__()
        self.url = url
        self.connect_timeout = connect_timeout
        self.pool = ConnectionPool(url, min_size=1, max_size=max(pool_size, 2), open=False,
                                   timeout=connect_timeout, name="ichido",
                                   kwargs={"connect_timeout": max(1, int(connect_timeout))})
        try:
            self.pool.open(wait=True, timeout=connect_timeout)
        except (psycopg.Error, PoolTimeout) as exc:
            self.pool.close()
            raise StorageUnavailable(f"cannot reach PostgreSQL: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.pool.connection() as conn:  # commits on exit, rolls back on an exception
            yield PgTransaction(conn)

    reading = transaction

    @contextmanager
    def autocommit(self) -> Iterator[psycopg.Connection]:
        """A raw connection in autocommit, for one statement that is atomic by itself."""
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False

    @contextmanager
    def statement(self) -> Iterator[Transaction]:
        with self.autocommit() as conn:
            yield PgTransaction(conn)

    @contextmanager
    def batch(self, size: int) -> Iterator[Transaction]:
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

    def lock_objects(self, tx: Transaction, object_ids: list[str]) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT"
                   " hashtextextended(o, 0) AS h FROM unnest(?::text[]) AS o ORDER BY h) AS s",
                   (object_ids,))

    def location(self) -> object:
        """The cluster, the database and the schema, by identity (oids change when a schema is
        restored elsewhere or created again; a byte copy carries the store's name only)."""
        with self.reading() as tx:
            where = tx.execute(
                "SELECT current_database(), current_schema(), (SELECT oid FROM pg_database"
                " WHERE datname = current_database()), (SELECT oid FROM pg_namespace"
                " WHERE nspname = current_schema()), to_regclass('ichido_events')::oid"
            ).fetchone()
        try:  # the cluster's own identity, where this role may read it
            with self.reading() as tx:
                cluster = tx.execute("SELECT system_identifier FROM pg_control_system()"
                                     ).fetchone()[0]
        except psycopg.Error:
            cluster = None
        return (*where, cluster)

    def dialect(self) -> "PostgresDialect":
        return PostgresDialect(self.pool)

    @contextmanager
    def _schema(self, dialect: migrations.Dialect) -> Iterator[None]:
        # Unreachable (503, retry later) and a failing step (fix the step) are told apart:
        # once the pool is open, an engine error comes from the schema, not the network.
        try:
            yield
        except (PoolTimeout, psycopg.OperationalError) as exc:  # the server, not the SQL
            raise StorageUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
        except psycopg.Error as exc:  # outside a step: reading the applied versions
            raise migrations.failed(dialect.name, exc) from exc

    def close(self) -> None:
        self.pool.close()


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
