"""What every SQL inbox shares: its tables, the admin queries, and the counters.

Engine files (``sqlite.py``, ``postgres.py``) write ``accept`` their own way (the cost of the
whole pipeline is there). Connections come from the database they are built on; all SQL here
uses ``?`` placeholders, which the PostgreSQL transaction translates.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import replace
from typing import Callable, Sequence

from ichido.db import migrations
from ichido.db.base import Transaction
from ichido.db.sql import SqlDatabase
from ichido.event import Delivery
from ichido.inbox.base import Cursor, EventFilter, EventRecord, Inbox, stats_from
from ichido.queue.base import FINISHED
from ichido.queue.table import DUE, EVENTS, QueueTable

FINISHED_SQL = ", ".join(f"'{status.value}'" for status in FINISHED)
# An ``EventRecord``'s columns but the body, which follows them (``SqlInbox.body_sql``).
EVENT_COLUMNS = ("id, type, created, object_id, status, attempts, received_at, next_attempt_at,"
                 " finished_at, last_error")

# The inbox's tables, portable between SQLite and PostgreSQL (SQLite maps the type names to its
# affinities). Append steps; never edit one that has shipped. ``ichido.schema`` composes them
# with the other core tables (the queue's, the outbox's, recovery's, the dashboard's).
INBOX_SCHEMA: list[migrations.Step] = [
    ("core", 1, [
        """CREATE TABLE ichido_events (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            created BIGINT NOT NULL,
            object_id TEXT,
            body BYTEA NOT NULL,
            received_at DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_token BIGINT NOT NULL DEFAULT 0,
            lease_owner TEXT,
            next_attempt_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            last_error TEXT
        )""",
        f"CREATE INDEX ichido_events_due ON ichido_events (next_attempt_at) WHERE {DUE}",
        "CREATE INDEX ichido_events_received ON ichido_events (received_at)",
        "CREATE INDEX ichido_events_status ON ichido_events (status, type)",
        """CREATE TABLE ichido_failures (
            event_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            failed_at DOUBLE PRECISION NOT NULL,
            error TEXT NOT NULL
        )""",
        "CREATE INDEX ichido_failures_event ON ichido_failures (event_id)",
        """CREATE TABLE ichido_counters (
            shard TEXT NOT NULL,
            name TEXT NOT NULL,
            value BIGINT NOT NULL,
            PRIMARY KEY (shard, name)
        )""",
    ]),
    # The store's own name, so a seen tier shared by several stores keeps them apart.
    ("core", 2, [
        """CREATE TABLE ichido_store (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            id TEXT NOT NULL
        )""",
    ]),
    # ``dlq retry`` and replays start a new round of attempts without forgetting the old ones:
    # ``attempts`` goes on counting, the retry budget counts from where the round began.
    ("core", 3, [
        "ALTER TABLE ichido_events ADD COLUMN requeued_at_attempt INTEGER NOT NULL DEFAULT 0",
    ]),
    # Every claim and every finish changes an event's status, and so rewrote its entry in each
    # index that begins with it. recovery's (status, created, id) serves every query by status
    # (listings, counts, stats), so (status, type) was paid twice per event for nothing.
    ("core", 4, ["DROP INDEX IF EXISTS ichido_events_status"]),
]


class SqlInbox(Inbox):
    """The inbox on any SQL database; engines add ``accept``."""

    #: the engine's own steps, applied after the core schema (``open_inbox``)
    schema: list[migrations.Step] = []
    #: an event's body, as a column of ``ichido_events`` (b"" once pruned), and whether it
    #: has one: in its own row here; SQLite keeps bodies apart (``inbox/sqlite.py``)
    body_sql = "body"
    has_body_sql = "octet_length(body) > 0"
    #: the queue that claims from ``ichido_events`` (``ichido.queue.open_queue``)
    queue_table: QueueTable = EVENTS

    def __init__(self, database: SqlDatabase, *, shard: str) -> None:
        self.database = database
        self.shard = shard
        self.owned_database: SqlDatabase | None = None  # opened by ``open_inbox`` itself

    def seen_namespace(self) -> str:
        return self.database.seen_namespace()

    def close(self) -> None:
        if self.owned_database is not None:
            self.owned_database.close()
            self.owned_database = None

    # -- receiving ---------------------------------------------------------------------------
    # Each engine writes ``accept`` its own way (the cost of the whole pipeline is there); both
    # insert in id order, so two batches holding the same ids lock them in the same order and
    # cannot deadlock each other, and both count in the same commit.

    def _count(self, tx: Transaction, increments: dict[str, int]) -> None:
        rows = [(name, value) for name, value in increments.items() if value]
        if rows:  # one statement, not one per counter: each is a round trip or a GIL hand-off
            tx.execute(
                "INSERT INTO ichido_counters (shard, name, value) VALUES"
                f" {', '.join('(?, ?, ?)' for _ in rows)} ON CONFLICT (shard, name) DO UPDATE"
                " SET value = ichido_counters.value + excluded.value",
                [v for name, value in rows for v in (self.shard, name, value)],
            )

    # -- inspecting and operating ------------------------------------------------------------

    def get(self, event_id: str) -> EventRecord | None:
        with self.database.reading() as tx:
            row = tx.execute(f"SELECT {self._columns()} FROM ichido_events WHERE id = ?",
                             (event_id,)).fetchone()
            if row is None:
                return None
            failures = tx.execute("SELECT attempt, failed_at, error FROM ichido_failures"
                                  " WHERE event_id = ? ORDER BY failed_at", (event_id,)).fetchall()
        return _record(row, tuple(tuple(f) for f in failures))

    def list(self, *, status: str | None = None, type: str | None = None,
             limit: int = 50) -> list[EventRecord]:
        where, params = ["1 = 1"], []
        if status:
            where.append("status = ?")
            params.append(status)
        if type:
            where.append("type = ?")
            params.append(type)
        with self.database.reading() as tx:
            rows = tx.execute(f"SELECT {self._columns()} FROM ichido_events WHERE"
                              f" {' AND '.join(where)} ORDER BY received_at DESC LIMIT ?",
                              (*params, limit)).fetchall()
        return [_record(row) for row in rows]

    def page(self, where: EventFilter = EventFilter(), *, after: Cursor | None = None,
             limit: int = 1000, newest_first: bool = False,
             bodies: bool = True) -> builtins.list[EventRecord]:
        """One page of the events ``where`` selects, in (``created``, ``id``) order (oldest
        first, or newest first), starting after the keyset ``after``.

        How to page through everything, in constant memory, however many rows match::

            cursor = None
            while rows := inbox.page(where, after=cursor, limit=1000):
                ...
                cursor = (rows[-1].created, rows[-1].id)

        The keyset is stable while events arrive (no OFFSET: nothing is skipped or shown
        twice). ``bodies=False`` leaves ``body`` empty (``b""``) for listings that do not
        show payloads. Used by ``ichido replay`` and the dashboard's events page.
        """
        sql, params = _where(where)
        if after is not None:
            sql += f" AND (created, id) {'<' if newest_first else '>'} (?, ?)"
            params.extend(after)
        order = "DESC" if newest_first else "ASC"
        columns = self._columns() if bodies else EVENT_COLUMNS
        with self.database.reading() as tx:
            rows = tx.execute(f"SELECT {columns} FROM ichido_events WHERE {sql}"
                              f" ORDER BY created {order}, id {order} LIMIT ?",
                              (*params, limit)).fetchall()
        return [_record(row if bodies else (*row, b"")) for row in rows]

    def count(self, where: EventFilter = EventFilter()) -> int:
        """How many stored events ``where`` selects (for progress bars and page counts)."""
        sql, params = _where(where)
        with self.database.reading() as tx:
            return int(tx.execute(f"SELECT count(*) FROM ichido_events WHERE {sql}",
                                  params).fetchone()[0])

    def requeue(self, event_ids: Sequence[str], *, statuses: Sequence[str],
                record: Callable[[Transaction, int], None] | None = None) -> int:
        """Give those of ``event_ids`` still in one of ``statuses`` a fresh set of attempts
        (replay), due now; return how many. ``record(tx, n)`` runs in the same transaction,
        so a job's progress commits with what it did, or not at all."""
        if not event_ids or not statuses:
            return 0
        with self.database.storage("requeue events"), self.database.transaction() as tx:
            done = tx.execute(
                "UPDATE ichido_events SET status = 'retrying', requeued_at_attempt = attempts,"
                " next_attempt_at = ?, finished_at = NULL, lease_owner = NULL"
                f" WHERE id IN ({', '.join('?' for _ in event_ids)})"
                # `|| ''` keeps SQLite on the primary key: on the status index it would walk
                # every event of that status for each page (a replay slowing as it grows)
                f" AND status || '' IN ({', '.join('?' for _ in statuses)})"
                f" AND {self.has_body_sql}",  # a pruned event's tombstone has none to run again
                (time.time(), *event_ids, *statuses)).rowcount
            if record is not None:
                record(tx, done)
        return done

    def requeue_dead(self, event_ids: Sequence[str] | None = None) -> int:
        """A fresh round of attempts: ``attempts`` goes on counting and the failures stay
        listed; the retry budget counts from ``requeued_at_attempt``."""
        sql = ("UPDATE ichido_events SET status = 'retrying', requeued_at_attempt = attempts,"
               " next_attempt_at = ? WHERE status = 'dead'")
        params: list[object] = [time.time()]
        if event_ids is not None:
            if not event_ids:
                return 0
            sql += f" AND id IN ({', '.join('?' for _ in event_ids)})"
            params.extend(event_ids)
        with self.database.transaction() as tx:
            return tx.execute(sql, params).rowcount

    def prune(self, older_than_seconds: float) -> int:
        """Empty the bodies (and drop the failures) of finished events received before the
        window, and keep their rows: each id's tombstone, a few bytes, so a redelivery months
        later is still a durable duplicate (Stripe resends for up to 30 days, and on demand)
        and ``stats`` still counts them by status. Returns how many were emptied."""
        old = f"status IN ({FINISHED_SQL}) AND received_at < ? AND {self.has_body_sql}"
        params = (time.time() - older_than_seconds,)
        with self.database.transaction() as tx:
            tx.execute("DELETE FROM ichido_failures WHERE event_id IN"
                       f" (SELECT id FROM ichido_events WHERE {old})", params)
            tx.execute("DELETE FROM ichido_fetched WHERE event_id IN"  # thin events' reads
                       f" (SELECT id FROM ichido_events WHERE {old})", params)
            return self._empty_bodies(tx, old, params)

    def _empty_bodies(self, tx: Transaction, where: str, params: Sequence[object]) -> int:
        """Leave the events ``where`` selects a tombstone: no body, no last error."""
        return tx.execute(f"UPDATE ichido_events SET body = ?, last_error = NULL WHERE {where}",
                          (b"", *params)).rowcount

    def _columns(self) -> str:
        return f"{EVENT_COLUMNS}, {self.body_sql}"

    def stats(self) -> dict[str, int]:
        with self.database.reading() as tx:
            counters = dict(tx.execute("SELECT name, sum(value) FROM ichido_counters"
                                       " GROUP BY name").fetchall())
            by_status = dict(tx.execute("SELECT status, count(*) FROM ichido_events"
                                        " GROUP BY status").fetchall())
        return stats_from(counters, by_status)

    def oldest_pending(self) -> float | None:
        """When the oldest event never tried yet was received (the backlog alert's measure)."""
        with self.database.reading() as tx:
            oldest = tx.execute("SELECT min(received_at) FROM ichido_events"
                                " WHERE status = 'pending'").fetchone()[0]
        return None if oldest is None else float(oldest)

    def ping(self) -> None:
        with self.database.storage("read"), self.database.reading() as tx:
            tx.execute("SELECT 1 FROM ichido_events LIMIT 1").fetchall()

    def probe(self) -> None:
        self.ping()
        with self.database.storage("write"), self.database.transaction():
            pass


def _where(where: EventFilter) -> tuple[str, list[object]]:
    """The SQL condition (``?`` placeholders) for an ``EventFilter``."""
    terms, params = ["1 = 1"], list[object]()
    if where.statuses:
        terms.append(f"status IN ({', '.join('?' for _ in where.statuses)})")
        params.extend(where.statuses)
    if where.ids:
        terms.append(f"id IN ({', '.join('?' for _ in where.ids)})")
        params.extend(where.ids)
    if where.types:
        alternatives = []
        for pattern in where.types:
            if pattern.endswith("*"):  # a prefix; _ and % are literal in Stripe's type names
                prefix = pattern[:-1]
                for char in ("\\", "%", "_"):
                    prefix = prefix.replace(char, "\\" + char)
                alternatives.append("type LIKE ? ESCAPE '\\'")
                params.append(prefix + "%")
            else:
                alternatives.append("type = ?")
                params.append(pattern)
        terms.append(f"({' OR '.join(alternatives)})")
    if where.shape is not None:  # thin types, and only they, begin v1. or v2. (shape_of)
        thin = "(type LIKE 'v1.%' OR type LIKE 'v2.%')"
        terms.append(thin if where.shape == "thin" else f"NOT {thin}")
    if where.object_id is not None:
        terms.append("object_id = ?")
        params.append(where.object_id)
    if where.since is not None:
        terms.append("created >= ?")
        params.append(where.since)
    if where.until is not None:
        terms.append("created < ?")
        params.append(where.until)
    return " AND ".join(terms), params



def _record(row: Sequence, failures: tuple = ()) -> EventRecord:
    values = list(row)
    values[-1] = bytes(values[-1])  # PostgreSQL returns memoryview-like bytes for BYTEA
    record = EventRecord(*values)  # the row's columns are the fields before ``failures``
    return replace(record, failures=failures) if failures else record


def first_of_each(deliveries: Sequence[Delivery], new_ids: set[str]) -> list[bool]:
    """True for the first copy of each newly stored id; later copies in the batch are duplicates."""
    accepted = []
    for delivery in deliveries:
        accepted.append(delivery.id in new_ids)
        new_ids.discard(delivery.id)
    return accepted
