"""The inbox on SQLite: the receiver writes to an intake file of its own, never to the file
whose write lock the handlers hold.

SQLite has one writer per file. A handler's transaction holds its file's write lock for as
long as the handler runs, so a receiver writing to that file would wait on it (and answer 503
after the busy timeout). Deliveries therefore land in ``<store>-intake`` beside the store:
durable there (I1), deduplicated against both files, and answered. Workers settle the intake
into ``ichido_events`` before they claim (``settle_intake``), in the store's own transactions;
the handlers, their markers and the queue stay in one file, so I2 is untouched. What binds
the two files together is in ``inbox/intake.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Sequence

from ichido.db.base import Transaction
from ichido.db.migrations import Step
from ichido.db.sqlite import SqliteDatabase, is_busy
from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.base import EventFilter, EventRecord, counts_for
from ichido.inbox.intake import (
    INTAKE_SCHEMA,
    PROBE_BYTES,
    PROBE_ID,
    STORE_STEPS,
    FileIdentity,
    adopt_legacy,
    bind,
    intake_path,
    mismatch,
)
from ichido.inbox.settling import Settling
from ichido.inbox.sql import SqlInbox, _record, first_of_each
from ichido.queue.table import EVENTS

__all__ = ["SqliteInbox", "intake_path"]

_CHUNK = 100  # rows per statement: SQLite caps bound variables per statement
CHECKPOINT_ROWS = 1000  # about 7 MB of WAL at Stripe's event sizes

log = logging.getLogger("ichido.inbox")

# In the store, committed with the settled events: the last intake batch they came from, so a
# settle that died between the store's commit and the intake's clean-up moves nothing twice.
STORE_SCHEMA: list[Step] = [
    ("sqlite-intake", 1, [
        """CREATE TABLE ichido_intake_settled (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            upto BIGINT NOT NULL
        )""",
        "INSERT INTO ichido_intake_settled (singleton, upto) VALUES (1, 0)",
    ]),
    *STORE_STEPS,
    # Bodies apart from the queue's rows: a claim and a finish rewrite an event's row, and
    # with a 3 KB body in it each row filled a 4 KB page of its own, so each was a page
    # written to the WAL and checkpointed. Kept apart, one page holds tens of events' states.
    ("sqlite-bodies", 1, [
        "CREATE TABLE ichido_bodies (id TEXT PRIMARY KEY, body BLOB NOT NULL)",
        "INSERT INTO ichido_bodies (id, body) SELECT id, body FROM ichido_events"
        " WHERE length(body) > 0",
        "ALTER TABLE ichido_events DROP COLUMN body",
    ]),
]
# An event's body in ``ichido_events``' statements (b"" for a pruned event's tombstone).
_BODY = "coalesce((SELECT b.body FROM ichido_bodies b WHERE b.id = ichido_events.id), x'')"


class SqliteInbox(Settling, SqlInbox):
    database: SqliteDatabase
    schema = STORE_SCHEMA
    body_sql = _BODY
    has_body_sql = "EXISTS (SELECT 1 FROM ichido_bodies b WHERE b.id = ichido_events.id)"
    queue_table = replace(EVENTS, body=_BODY)

    def __init__(self, database: SqliteDatabase, *, shard: str,
                 checkpoint_rows: int = CHECKPOINT_ROWS) -> None:
        super().__init__(database, shard=shard)
        adopt_legacy(database.path)
        self.intake = SqliteDatabase(intake_path(database.path),
                                     synchronous=database.synchronous)
        self.intake.migrate(INTAKE_SCHEMA)
        self.intake_id = ""  # named by ``bind``, once the store's schema is there
        self._files: tuple[FileIdentity, ...] = ()
        # Without an fsync per commit (WAL + NORMAL) a commit is a few page writes: cheaper on
        # the event loop than a hand-over to a writer thread, whose GIL ping-pong with the loop
        # costs more than the write. With FULL or EXTRA every commit waits for the disk: no.
        self._inline = database.synchronous == "NORMAL"
        self._nowait: sqlite3.Connection | None = None
        self._settlers = threading.local()
        self._writer: ThreadPoolExecutor | None = None
        self.checkpoint_rows = checkpoint_rows
        self._unchecked_rows = 0  # written by the loop's connection since its last checkpoint
        self._checkpointing = False
        self._holding_off = False  # a RESTART checkpoint waits for the write lock

    # -- the binding (``inbox/intake.py``) ------------------------------------------------------

    def bind(self) -> None:
        """Bind the intake to the store, once the store's schema is there; remember both files
        as opened. Reads the store, writes only the intake."""
        self.intake_id = bind(self.database, self.intake)
        self._files = (FileIdentity(self.database.path, "SQLite store"),
                       FileIdentity(self.intake.path, "intake"))

    def check_in_place(self) -> None:
        """Raise ``StorageUnavailable`` when the store or the intake was deleted or replaced
        since they were opened (two ``stat`` calls)."""
        for file in self._files:
            file.check()

    def check_bound(self, conn: sqlite3.Connection | None = None) -> None:
        """Raise ``StorageUnavailable`` (``intake_mismatch``) unless the intake still names this
        store and itself: ``conn`` has the intake attached (a settle), else each file's own."""
        if conn is None:
            store = self.database.conn().execute("SELECT id FROM ichido_store").fetchone()
            owner = self.intake.conn().execute(
                "SELECT intake, store FROM ichido_intake_owner").fetchone()
        else:
            store = conn.execute("SELECT id FROM main.ichido_store").fetchone()
            owner = conn.execute("SELECT intake, store FROM intake.ichido_intake_owner").fetchone()
        if store is None or owner is None or (owner[0], owner[1]) != (self.intake_id, store[0]):
            raise mismatch(self.intake.path, self.database.path)

    def seen_namespace(self) -> str:
        """The store where it lives, and its intake: a new intake (the old one deleted with
        what it held) starts a new namespace, so the seen tier never speaks for lost ids."""
        return f"{self.database.seen_namespace()}.{self.intake_id[:12]}"

    def durable_among(self, event_ids: Sequence[str]) -> set[str] | None:
        """A shared seen tier's hits, checked here: a copy of this store put back in place
        (a snapshot restored with ``cp``) carries its name and path, so only the files can
        tell which ids they hold. Two index look-ups per id, on the loop's connections."""
        ids = sorted(event_ids)
        return _present(self.intake.conn(), "ichido_intake", ids) | _present(
            self.database.conn(), "ichido_events", ids)

    def probe(self) -> None:
        """Can a delivery be stored now? Both files in place and bound, and a delivery-shaped
        write into the intake (inserted and deleted in one committed transaction)."""
        self.check_in_place()
        if not os.access(self.database.path, os.W_OK):  # workers could not settle into it
            raise StorageUnavailable(f"cannot write to {self.database.path}: the file is"
                                     " read-only for this user", code="read_only_store")
        with self.intake.storage("write the intake"):
            self.check_bound()
            with self.intake.transaction() as tx:
                tx.execute("INSERT INTO ichido_intake (id, batch, type, created, object_id, body,"
                           " received_at) VALUES (?, 0, 'probe', 0, NULL, zeroblob(?), 0)",
                           (PROBE_ID, PROBE_BYTES))
                tx.execute("DELETE FROM ichido_intake WHERE id = ?", (PROBE_ID,))

    # -- receiving: into the intake ------------------------------------------------------------

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
        writer holds the intake's lock or a checkpoint is restarting its WAL."""
        # Its own connection, which gives up at once when another writer holds the lock
        # (busy_timeout 0), so the event loop never sleeps on a lock, and which never
        # checkpoints (copies the WAL into the file, with an fsync) itself: every
        # ``checkpoint_rows`` rows the writer thread does, while the loop goes on writing.
        if self._holding_off:
            return None
        self.check_in_place()
        if self._nowait is None:
            self._nowait = self.intake.connect(*self.intake.pragmas, "PRAGMA busy_timeout = 0",
                                               "PRAGMA wal_autocheckpoint = 0")
        try:
            with self.intake.transaction_on(self._nowait) as tx:
                accepted = self._accept(tx, deliveries, cache_hits)
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
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
        self.check_in_place()
        with self.intake.storage("store deliveries"), self.intake.transaction() as tx:
            return self._accept(tx, deliveries, cache_hits)

    def _accept(self, tx: Transaction, deliveries: Sequence[Delivery],
                cache_hits: int) -> list[bool]:
        """In the intake's write transaction. Holding its lock keeps settling from deleting
        intake rows meanwhile, and a settle commits the store before it deletes: so an id is
        always in the intake or visible in the store, and the two reads below cannot miss it."""
        ordered = sorted(deliveries, key=lambda d: d.id)
        ids = [d.id for d in ordered]
        known = _present(tx, "ichido_intake", ids) | _present(self.database.conn(),
                                                              "ichido_events", ids)
        fresh = {d.id: d for d in ordered if d.id not in known}
        accepted = first_of_each(deliveries, set(fresh))
        counts = counts_for(accepted, cache_hits)
        batch = tx.execute(
            "INSERT INTO ichido_intake_batches (received, fresh, duplicates_cache,"
            " duplicates_durable) VALUES (?, ?, ?, ?) RETURNING seq",
            (counts["received"], counts["unique"], counts["duplicates_cache"],
             counts["duplicates_durable"])).fetchone()[0]
        rows, now = list(fresh.values()), time.time()
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            tx.execute(
                "INSERT INTO ichido_intake (id, batch, type, created, object_id, body,"
                f" received_at) VALUES {','.join('(?,?,?,?,?,?,?)' for _ in chunk)}",
                [v for d in chunk for v in (d.id, batch, d.type, d.created, d.object_id,
                                            d.body, now)])
        return accepted

    # -- reading: the store, after a settle that never waits ------------------------------------

    def get(self, event_id: str) -> EventRecord | None:
        record = super().get(event_id)
        if record is not None:
            return record
        row = self.intake.conn().execute(
            "SELECT id, type, created, object_id, 'pending', 0, received_at, received_at, NULL,"
            " NULL, body FROM ichido_intake WHERE id = ?", (event_id,)).fetchone()
        if row is None:  # settled between the two reads
            return super().get(event_id)
        return _record(row)

    def list(self, **kwargs) -> list[EventRecord]:
        self.settle_intake(wait=False)
        return super().list(**kwargs)

    def page(self, where: EventFilter = EventFilter(), **kwargs) -> builtins.list[EventRecord]:
        self.settle_intake(wait=False)
        return super().page(where, **kwargs)

    def count(self, where: EventFilter = EventFilter()) -> int:
        self.settle_intake(wait=False)
        return super().count(where)

    def stats(self) -> dict[str, int]:
        """The store's figures plus what still waits in the intake (pending, and counted)."""
        stats = super().stats()
        reader = self.intake.conn()
        upto = self._settled_upto()
        received, fresh, cache, durable = reader.execute(
            "SELECT coalesce(sum(received), 0), coalesce(sum(fresh), 0),"
            " coalesce(sum(duplicates_cache), 0), coalesce(sum(duplicates_durable), 0)"
            " FROM ichido_intake_batches WHERE seq > ?", (upto,)).fetchone()
        waiting = reader.execute("SELECT count(*) FROM ichido_intake WHERE batch > ?",
                                 (upto,)).fetchone()[0]
        stats["received"] += received
        stats["unique"] += fresh
        stats["duplicates_cache"] += cache
        stats["duplicates_durable"] += durable
        stats["pending"] += waiting
        return stats

    def oldest_pending(self) -> float | None:
        waiting = self.intake.conn().execute("SELECT min(received_at) FROM ichido_intake"
                                             " WHERE batch > ?", (self._settled_upto(),)
                                             ).fetchone()[0]
        stored = super().oldest_pending()
        return min((t for t in (waiting, stored) if t is not None), default=None)

    def _empty_bodies(self, tx: Transaction, where: str, params: Sequence[object]) -> int:
        tx.execute(f"UPDATE ichido_events SET last_error = NULL WHERE {where}", params)
        return tx.execute("DELETE FROM ichido_bodies WHERE id IN"
                          f" (SELECT id FROM ichido_events WHERE {where})", params).rowcount

    # -- upkeep ------------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Copy the intake's WAL into its file while the loop goes on writing (PASSIVE). The
        next write starts the WAL afresh only if it finds everything copied, which steady
        writes rarely allow; when the WAL has grown long all the same, RESTART: it holds
        writers off (they queue on this thread meanwhile) for the little left to copy."""
        try:
            conn = self.intake.conn()
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

    def close(self) -> None:
        """The writer thread and the intake; the store's connections close with the store."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        self._nowait, self._settlers = None, threading.local()
        self.intake.close()
        super().close()


def _present(conn: Transaction, table: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` ``table`` holds."""
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.update(row[0] for row in conn.execute(
            f"SELECT id FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    return found
