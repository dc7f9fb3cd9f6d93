"""Settling SQLite's intake into its store: what a worker does before it claims.

A mixin of ``SqliteInbox`` (``inbox/sqlite.py``), which gives it the two files
(``database``, ``intake``), the binding (``intake_id``, ``check_bound``, ``check_in_place``,
``bind``) and the counters (``_count``). Rows move inside SQLite, store first: the intake's
rows are deleted only once the store holds them, by id, never by batch number alone.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Callable

from ichido.db.base import Transaction
from ichido.db.sqlite import SqliteDatabase, is_busy
from ichido.errors import StorageUnavailable

SETTLE_BATCHES = 256  # intake batches moved per store transaction
# Intake rows into the store (a row the store holds already is left as it is, and so is its
# body, which a prune may have emptied); ``rows`` picks the batches. Bodies first, while the
# store does not hold their events yet. In batch order, which the intake's batch index gives
# without a sort: the store's rows then lie in the order the queue claims them (sorting by id
# copied every body through a temporary B-tree: 13 of the settle's 31 µs per event).
_COPY_BODIES = ("INSERT INTO main.ichido_bodies (id, body) SELECT id, body"
                " FROM intake.ichido_intake WHERE {rows}"
                " AND +id NOT IN (SELECT id FROM main.ichido_events)"
                " ORDER BY batch ON CONFLICT (id) DO NOTHING")
_COPY = ("INSERT INTO main.ichido_events (id, type, created, object_id, received_at,"
         " next_attempt_at) SELECT id, type, created, object_id, received_at, received_at"
         " FROM intake.ichido_intake WHERE {rows} ORDER BY batch ON CONFLICT (id) DO NOTHING")

log = logging.getLogger("ichido.inbox")


class Settling:
    """``settle_intake`` and its parts, for ``SqliteInbox`` (see the module's docstring)."""

    database: SqliteDatabase
    intake: SqliteDatabase
    intake_id: str
    _settlers: threading.local
    # given by SqliteInbox (and SqlInbox above it): the binding's checks and the counters
    bind: Callable[[], None]
    check_in_place: Callable[[], None]
    check_bound: Callable[[sqlite3.Connection | None], None]
    _count: Callable[[Transaction, dict[str, int]], None]

    def settle_intake(self, *, wait: bool = True) -> int:
        """Move what the intake holds into ``ichido_events`` (where the queue claims it), with
        its counters; return how many events moved. ``wait=False`` gives up at once, moving
        nothing, when a handler holds the store's lock (for readers that only want freshness).

        One statement copies the rows inside SQLite (the intake is attached to this thread's
        settling connection), in a transaction that writes the store first: it waits for the
        store's lock, never for the intake's, which it only reads. The binding is checked in
        that transaction, and only rows the store holds are ever deleted from the intake."""
        if not self.intake_id:  # built without ``open_inbox``, which binds at once
            self.bind()
        self.check_in_place()
        conn = self._settler(wait)
        upto, marked, newest, oldest, lowest_row = conn.execute(
            "SELECT (SELECT upto FROM main.ichido_intake_settled),"
            " (SELECT intake FROM main.ichido_intake_settled),"
            " (SELECT max(seq) FROM intake.ichido_intake_batches),"
            " (SELECT min(seq) FROM intake.ichido_intake_batches),"
            " (SELECT min(batch) FROM intake.ichido_intake)").fetchone()
        if marked == self.intake_id and (newest is None or newest <= upto) and (
                lowest_row is None or lowest_row > upto or not self._strays(conn, upto)):
            if oldest is not None and oldest <= upto:
                self._clean_up(conn, upto, wait)  # what a settle that died before it left
            return 0
        try:
            moved, last = self._move(conn)
        except sqlite3.Error as exc:
            if is_busy(exc) and not wait:
                return 0
            raise StorageUnavailable(f"could not settle the intake: {exc}") from exc
        self._clean_up(conn, last, wait)
        return moved

    def _move(self, conn: sqlite3.Connection) -> tuple[int, int]:
        conn.execute("BEGIN")
        try:
            # A write first, so the lock is waited for before any read snapshot is taken.
            conn.execute("UPDATE main.ichido_intake_settled SET upto = upto")
            self.check_bound(conn)
            upto, marked = conn.execute(
                "SELECT upto, intake FROM main.ichido_intake_settled").fetchone()
            if marked != self.intake_id:  # its mark counted another intake's batch numbers
                if marked is not None:
                    log.warning("the store %s was settled from another intake before (moved, "
                                "deleted or replaced); counting %s's batches from the start",
                                self.database.path, self.intake.path)
                upto = 0
            last = conn.execute(
                "SELECT coalesce(max(seq), ?) FROM (SELECT seq FROM intake.ichido_intake_batches"
                " WHERE seq > ? ORDER BY seq LIMIT ?)", (upto, upto, SETTLE_BATCHES)).fetchone()[0]
            moved = _copy(conn, "batch > ? AND batch <= ?", (upto, last))
            # Rows of batches counted already that the store lacks (an intake put back from
            # before the store's mark): stored all the same, and counted now.
            strays = _copy(conn, "batch <= ?", (upto,))
            taken, received, fresh, cache, durable = conn.execute(
                "SELECT (SELECT count(*) FROM intake.ichido_intake WHERE batch > ?1"
                " AND batch <= ?2), coalesce(sum(received), 0), coalesce(sum(fresh), 0),"
                " coalesce(sum(duplicates_cache), 0), coalesce(sum(duplicates_durable), 0)"
                " FROM intake.ichido_intake_batches WHERE seq > ?1 AND seq <= ?2",
                (upto, last)).fetchone()
            already = taken - moved  # stored before: durable duplicates after all
            self._count(conn, {"received": received + strays, "unique": fresh - already + strays,
                               "duplicates_cache": cache, "duplicates_durable": durable + already})
            conn.execute("UPDATE main.ichido_intake_settled SET upto = ?, intake = ?",
                         (last, self.intake_id))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if strays:
            log.warning("settled %d events of %s that the store's mark had counted already",
                        strays, self.intake.path)
        return moved + strays, last

    @staticmethod
    def _strays(conn: sqlite3.Connection, upto: int) -> bool:
        """Whether the intake holds a row of a batch the mark counted that the store lacks."""
        return conn.execute(
            "SELECT EXISTS (SELECT 1 FROM intake.ichido_intake WHERE batch <= ?"
            " AND +id NOT IN (SELECT id FROM main.ichido_events))", (upto,)).fetchone()[0] == 1

    def _clean_up(self, conn: sqlite3.Connection, upto: int, wait: bool) -> None:
        """Delete from the intake the rows of settled batches that the store holds: never a
        row by its batch number alone. Left for the next settle when the intake is busy."""
        try:
            conn.execute("BEGIN")  # deferred: writes the intake, only reads the store
            # ``+id``: walk the intake's few rows by batch and look each up in the store,
            # never the store's every id looked up in the intake
            conn.execute("DELETE FROM intake.ichido_intake WHERE batch <= ?"
                         " AND +id IN (SELECT id FROM main.ichido_events)", (upto,))
            conn.execute("DELETE FROM intake.ichido_intake_batches WHERE seq <= ?", (upto,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if is_busy(exc) and not wait:
                return
            raise StorageUnavailable(f"could not clean the intake: {exc}") from exc

    def _settler(self, wait: bool) -> sqlite3.Connection:
        """This thread's settling connection: the store, with the intake attached; one that
        waits for the store's lock and one that gives up at once (a connection is used by one
        thread at a time, and readers on several threads settle)."""
        name = "waiting" if wait else "nowait"
        conn = getattr(self._settlers, name, None)
        if conn is None:
            conn = self.database.connect(*self.database.pragmas,
                                         *(() if wait else ("PRAGMA busy_timeout = 0",)))
            conn.execute("ATTACH DATABASE ? AS intake", (self.intake.path,))
            # The intake's rows live on in the store once settled: zeroing each deleted one
            # (SECURE_DELETE, on in many builds) wrote every freed page, 4 KB per event
            # written twice (WAL, then checkpoint); FAST zeroes only where no page is added.
            conn.execute("PRAGMA intake.secure_delete = FAST")
            setattr(self._settlers, name, conn)
        return conn

    def _settled_upto(self) -> int:
        """The store's mark in this intake's batch numbers (0 if it counted another intake's)."""
        upto, marked = self.database.conn().execute(
            "SELECT upto, intake FROM ichido_intake_settled").fetchone()
        return int(upto) if marked == self.intake_id else 0


def _copy(conn: sqlite3.Connection, rows: str, params: tuple[int, ...]) -> int:
    """Copy the intake's ``rows`` the store lacks, bodies and all; return how many."""
    conn.execute(_COPY_BODIES.format(rows=rows), params)
    return conn.execute(_COPY.format(rows=rows), params).rowcount
