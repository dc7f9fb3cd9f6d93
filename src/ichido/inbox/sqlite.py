"""The embedded default: one SQLite file in WAL mode holds the inbox, the queue and domain state.

One connection per thread. Writers take the lock up front (``BEGIN IMMEDIATE``) so that two
writers queue on ``busy_timeout`` instead of failing on a lock upgrade. SQLite has one writer at
a time, so handlers of several workers run one after another here, which also serializes the
events of one object for free; that is the price of zero set-up, and why PostgreSQL exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Iterator, Sequence
from urllib.parse import urlparse

from ichido.errors import ConfigError, StorageUnavailable
from ichido.event import Delivery
from ichido.inbox import migrations
from ichido.inbox.base import Transaction, counts_for
from ichido.inbox.sql import DUE, SqlInbox, first_of_each

_CHUNK = 100  # rows per INSERT: SQLite caps bound variables per statement
CHECKPOINT_ROWS = 1000  # about 7 MB of WAL at Stripe's event sizes

log = logging.getLogger("ichido.inbox")


def path_from_url(url: str) -> str:
    """``sqlite:///ichido.db`` → ``ichido.db``; ``sqlite:////var/x.db`` → ``/var/x.db``."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite" or not parsed.path or parsed.path == "/":
        raise ConfigError(f"not a SQLite URL: {url!r} (sqlite:///relative.db, sqlite:////abs.db)")
    path = parsed.path[1:]
    if path == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot be shared by receiver and workers")
    return path


class SqliteInbox(SqlInbox):
    engine_errors = (sqlite3.Error,)

    def __init__(self, url: str, *, shard: str, synchronous: str = "NORMAL",
                 busy_timeout: float = 10.0, migrate: bool = True,
                 steps: Sequence[migrations.Step] = (),
                 checkpoint_rows: int = CHECKPOINT_ROWS) -> None:
        super().__init__(shard=shard, steps=steps)
        self.path = path_from_url(url)
        self._pragmas = (f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}",
                         "PRAGMA journal_mode = WAL", f"PRAGMA synchronous = {synchronous}")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Without an fsync per commit (WAL + NORMAL) a commit is a few page writes: cheaper on
        # the event loop than a hand-over to a writer thread, whose GIL ping-pong with the loop
        # costs more than the write. With FULL or EXTRA every commit waits for the disk: no.
        self._inline = synchronous == "NORMAL"
        self._nowait: sqlite3.Connection | None = None
        self._writer: ThreadPoolExecutor | None = None
        self.checkpoint_rows = checkpoint_rows
        self._unchecked_rows = 0  # written by the loop's connection since its last checkpoint
        self._checkpointing = False
        self._holding_off = False  # a RESTART checkpoint waits for the write lock
        try:
            dialect = SqliteDialect(self._conn())
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:  # the file is open: an engine error now comes from the schema (as on PostgreSQL)
            if migrate:
                migrations.apply(dialect, self.steps, errors=self.engine_errors)
            migrations.check(dialect, self.steps)
        except sqlite3.Error as exc:  # outside a step: reading the applied versions
            raise migrations.failed(dialect.name, exc) from exc

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect(*self._pragmas)
        return conn

    def _connect(self, *pragmas: str) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in pragmas:
            conn.execute(pragma)
        with self._lock:
            self._all.append(conn)
        return conn

    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        accepted = self.accept_nowait(deliveries, cache_hits=cache_hits) if self._inline else None
        if accepted is None:  # locked, a RESTART pending, or fsync per commit: on our thread
            accepted = await asyncio.get_running_loop().run_in_executor(
                self._writer_thread(), partial(self.accept, deliveries, cache_hits=cache_hits))
        return accepted

    def accept_nowait(self, deliveries: Sequence[Delivery], *,
                      cache_hits: int = 0) -> list[bool] | None:
        """``accept`` if it can be done at once; None, with nothing written, when another
        writer holds the lock or a checkpoint is restarting the WAL."""
        # Its own connection, which gives up at once when another writer holds the lock
        # (busy_timeout 0), so the event loop never sleeps on a lock, and which never
        # checkpoints (copies the WAL into the database, with an fsync) itself: every
        # ``checkpoint_rows`` rows the writer thread does, while the loop goes on writing.
        if self._holding_off:
            return None
        if self._nowait is None:
            self._nowait = self._connect(*self._pragmas, "PRAGMA busy_timeout = 0",
                                         "PRAGMA wal_autocheckpoint = 0")
        try:
            with self._transaction(self._nowait) as tx:
                accepted = self._accept(tx, deliveries, cache_hits)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None  # rolled back: nothing written
            raise StorageUnavailable(f"could not store deliveries: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"could not store deliveries: {exc}") from exc
        self._unchecked_rows += len(deliveries)
        if self._unchecked_rows >= self.checkpoint_rows and not self._checkpointing:
            self._checkpointing = True
            self._writer_thread().submit(self._checkpoint)
        return accepted

    def accept(self, deliveries: Sequence[Delivery], *, cache_hits: int = 0) -> list[bool]:
        with self._storage("store deliveries"), self.transaction() as tx:
            return self._accept(tx, deliveries, cache_hits)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database while the loop goes on writing (PASSIVE). The next
        write starts the WAL afresh only if it finds everything copied, which steady writes
        rarely allow; when the WAL has grown long all the same, RESTART: it holds writers off
        (they queue on this thread meanwhile) for the little the passive passes left to copy."""
        try:
            conn = self._conn()
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= 8 * self.checkpoint_rows:  # ~4 checkpoints' worth of pages
                self._holding_off = True  # else the loop's writes starve it of the lock
                try:
                    conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                finally:
                    self._holding_off = False
            self._unchecked_rows = 0
        except sqlite3.Error as exc:  # the rows are stored; the next checkpoint retries
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            self._checkpointing = False

    def _writer_thread(self) -> ThreadPoolExecutor:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ichido-accept")
        return self._writer

    def transaction(self) -> AbstractContextManager[Transaction]:
        return self._transaction(self._conn())

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[Transaction]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT (busy) leaves the transaction open
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        yield self._conn()

    def _accept(self, tx: Transaction, deliveries: Sequence[Delivery],
                cache_hits: int) -> list[bool]:
        ordered = sorted(deliveries, key=lambda d: d.id)
        new_ids = self._insert_new(tx, ordered, time.time()) if deliveries else set()
        accepted = first_of_each(deliveries, new_ids)
        self._count(tx, counts_for(accepted, cache_hits))
        return accepted

    def _insert_new(self, tx: Transaction, deliveries: Sequence[Delivery], now: float) -> set[str]:
        """Insert, skipping ids already stored; return the ids this call inserted."""
        # Ask which ids exist (few: the seen tier caught most duplicates), then insert the rest
        # without RETURNING, which would step once per inserted row. We hold the write lock
        # (BEGIN IMMEDIATE), so nothing can appear in between.
        fresh = {d.id: d for d in deliveries}
        for start in range(0, len(deliveries), _CHUNK):
            ids = [d.id for d in deliveries[start : start + _CHUNK]]
            for (known,) in tx.execute("SELECT id FROM ichido_events WHERE id IN"
                                       f" ({','.join('?' * len(ids))})", ids):
                fresh.pop(known, None)
        rows = list(fresh.values())
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            tx.execute(
                "INSERT INTO ichido_events (id, type, created, object_id, body, received_at,"
                f" next_attempt_at) VALUES {','.join('(?,?,?,?,?,?,?)' for _ in chunk)}",
                [v for d in chunk for v in (d.id, d.type, d.created, d.object_id, d.body, now, now)],
            )
        return set(fresh)

    def _claim_due(self, tx: Transaction, owner: str, limit: int, lease_until: float,
                   now: float) -> list[tuple]:
        return tx.execute(
            "UPDATE ichido_events SET status = 'processing', attempts = attempts + 1,"
            " lease_token = lease_token + 1, lease_owner = ?, next_attempt_at = ?"
            # The hint keeps the planner on the partial index: without it SQLite may pick the
            # status index and sort the whole backlog on every claim (60 ms at 20k pending).
            " WHERE id IN (SELECT id FROM ichido_events INDEXED BY ichido_events_due"
            f" WHERE {DUE} AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?)"
            " RETURNING id, type, body, attempts, lease_token, object_id",
            (owner, lease_until, now, limit),
        ).fetchall()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
        self._nowait = None


class SqliteDialect:
    """What the migration runner needs from SQLite."""

    name = "SQLite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def current_version(self, component: str) -> int:
        self.conn.execute("CREATE TABLE IF NOT EXISTS ichido_schema (component TEXT NOT NULL,"
                          " version INTEGER NOT NULL, applied_at DOUBLE PRECISION NOT NULL,"
                          " PRIMARY KEY (component, version))")
        row = self.conn.execute("SELECT max(version) FROM ichido_schema WHERE component = ?",
                                (component,)).fetchone()
        return row[0] or 0

    def apply(self, component: str, version: int, statements: list[str]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if self.current_version(component) < version:  # another process may be first
                for statement in statements:
                    self.conn.execute(statement)
                self.conn.execute("INSERT INTO ichido_schema (component, version, applied_at)"
                                  " VALUES (?, ?, ?)", (component, version, time.time()))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
