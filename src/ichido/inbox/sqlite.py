"""The inbox in a SQLite file: written from the event loop at once when the lock is free.

The loop's own connection never waits for the write lock (``busy_timeout`` 0) and never
checkpoints; a writer thread takes over when the lock is held, and copies the WAL into the
database every ``checkpoint_rows`` rows while the loop goes on writing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Sequence

from ichido.db.base import Transaction
from ichido.db.sqlite import SqliteDatabase
from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.base import counts_for
from ichido.inbox.sql import SqlInbox, first_of_each

_CHUNK = 100  # rows per INSERT: SQLite caps bound variables per statement
CHECKPOINT_ROWS = 1000  # about 7 MB of WAL at Stripe's event sizes

log = logging.getLogger("ichido.inbox")


class SqliteInbox(SqlInbox):
    database: SqliteDatabase

    def __init__(self, database: SqliteDatabase, *, shard: str,
                 checkpoint_rows: int = CHECKPOINT_ROWS) -> None:
        super().__init__(database, shard=shard)
        # Without an fsync per commit (WAL + NORMAL) a commit is a few page writes: cheaper on
        # the event loop than a hand-over to a writer thread, whose GIL ping-pong with the loop
        # costs more than the write. With FULL or EXTRA every commit waits for the disk: no.
        self._inline = database.synchronous == "NORMAL"
        self._nowait: sqlite3.Connection | None = None
        self._writer: ThreadPoolExecutor | None = None
        self.checkpoint_rows = checkpoint_rows
        self._unchecked_rows = 0  # written by the loop's connection since its last checkpoint
        self._checkpointing = False
        self._holding_off = False  # a RESTART checkpoint waits for the write lock

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
            self._nowait = self.database.connect(*self.database.pragmas,
                                                 "PRAGMA busy_timeout = 0",
                                                 "PRAGMA wal_autocheckpoint = 0")
        try:
            with self.database.transaction_on(self._nowait) as tx:
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
        with self.database.storage("store deliveries"), self.database.transaction() as tx:
            return self._accept(tx, deliveries, cache_hits)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database while the loop goes on writing (PASSIVE). The next
        write starts the WAL afresh only if it finds everything copied, which steady writes
        rarely allow; when the WAL has grown long all the same, RESTART: it holds writers off
        (they queue on this thread meanwhile) for the little the passive passes left to copy."""
        try:
            conn = self.database.conn()
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

    def close(self) -> None:
        """The writer thread; the connections are the database's, closed with it."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        self._nowait = None
        super().close()
