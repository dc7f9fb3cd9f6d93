"""The embedded default: one SQLite file in WAL mode holds the inbox, the queue and domain state.

One connection per thread. Writers take the lock up front (``BEGIN IMMEDIATE``) so that two
writers queue on ``busy_timeout`` instead of failing on a lock upgrade. SQLite has one writer at
a time, so handlers of several workers run one after another here; that is the price of zero
set-up, and the reason PostgreSQL exists as a backend.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Sequence
from urllib.parse import urlparse

from ichido.errors import ConfigError, LeaseLost, StorageUnavailable
from ichido.event import Delivery
from ichido.inbox import migrations
from ichido.inbox.base import (
    FINISHED,
    Claim,
    EventRecord,
    Inbox,
    Status,
    Transaction,
    counts_for,
    stats_from,
)

_EVENT_COLUMNS = (
    "id, type, created, object_id, status, attempts, received_at, next_attempt_at,"
    " finished_at, last_error, body"
)
_DUE = "status IN ('pending', 'retrying', 'processing')"

# Versioned schema: append steps, never edit one that has shipped.
SCHEMA: list[tuple[str, int, list[str]]] = [
    ("core", 1, [
        f"""CREATE TABLE ichido_events (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            created INTEGER NOT NULL,
            object_id TEXT,
            body BLOB NOT NULL,
            received_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_token INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            next_attempt_at REAL,
            finished_at REAL,
            last_error TEXT
        )""",
        f"CREATE INDEX ichido_events_due ON ichido_events (next_attempt_at) WHERE {_DUE}",
        "CREATE INDEX ichido_events_received ON ichido_events (received_at)",
        """CREATE TABLE ichido_failures (
            event_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            failed_at REAL NOT NULL,
            error TEXT NOT NULL
        )""",
        "CREATE INDEX ichido_failures_event ON ichido_failures (event_id)",
        """CREATE TABLE ichido_counters (
            shard TEXT NOT NULL,
            name TEXT NOT NULL,
            value INTEGER NOT NULL,
            PRIMARY KEY (shard, name)
        )""",
    ]),
]


def path_from_url(url: str) -> str:
    """``sqlite:///ichido.db`` → ``ichido.db``; ``sqlite:////var/x.db`` → ``/var/x.db``."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite" or not parsed.path or parsed.path == "/":
        raise ConfigError(f"not a SQLite URL: {url!r} (use sqlite:///relative.db or sqlite:////abs.db)")
    path = parsed.path[1:]
    if path == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot be shared by receiver and workers")
    return path


class SqliteInbox(Inbox):
    def __init__(self, url: str, *, synchronous: str = "NORMAL", busy_timeout: float = 10.0,
                 shard: str, migrate: bool = True) -> None:
        self.path = path_from_url(url)
        self._synchronous = synchronous
        self._busy_ms = int(busy_timeout * 1000)
        self._shard = shard
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        dialect = SqliteDialect(self._conn())
        if migrate:
            migrations.apply(dialect, SCHEMA)
        migrations.check(dialect, SCHEMA)

    # -- connections -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- receiving ---------------------------------------------------------------------------

    def accept(self, deliveries: Sequence[Delivery], *, cache_hits: int = 0) -> list[bool]:
        now = time.time()
        try:
            with self.transaction() as tx:
                new_ids: set[str] = set()
                for start in range(0, len(deliveries), 100):  # SQLite's bound-variable limit
                    chunk = deliveries[start : start + 100]
                    values = ",".join("(?,?,?,?,?,?,?)" for _ in chunk)
                    params = [v for d in chunk for v in (d.id, d.type, d.created, d.object_id,
                                                          d.body, now, now)]
                    rows = tx.execute(
                        "INSERT INTO ichido_events (id, type, created, object_id, body,"
                        f" received_at, next_attempt_at) VALUES {values}"
                        " ON CONFLICT (id) DO NOTHING RETURNING id",
                        params,
                    ).fetchall()
                    new_ids.update(row[0] for row in rows)
                accepted = _first_of_each(deliveries, new_ids)
                self._count(tx, counts_for(accepted, cache_hits))
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"SQLite did not take the write: {exc}") from exc
        return accepted

    def _count(self, tx: Transaction, increments: dict[str, int]) -> None:
        rows = [(self._shard, name, value) for name, value in increments.items() if value]
        if rows:
            tx.executemany(
                "INSERT INTO ichido_counters (shard, name, value) VALUES (?, ?, ?)"
                " ON CONFLICT (shard, name) DO UPDATE SET value = value + excluded.value",
                rows,
            )

    # -- working -----------------------------------------------------------------------------

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        now = time.time()
        with self.transaction() as tx:
            rows = tx.execute(
                "UPDATE ichido_events SET status = 'processing', attempts = attempts + 1,"
                " lease_token = lease_token + 1, lease_owner = ?, next_attempt_at = ?"
                f" WHERE id IN (SELECT id FROM ichido_events WHERE {_DUE}"
                "  AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING id, type, body, attempts, lease_token",
                (owner, now + lease_seconds, now, limit),
            ).fetchall()
        return [Claim(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    @contextmanager
    def finishing(self, claim: Claim, status: Status) -> Iterator[Transaction]:
        with self.transaction() as tx:
            marked = tx.execute(
                "UPDATE ichido_events SET status = ?, finished_at = ?, next_attempt_at = NULL,"
                " lease_owner = NULL WHERE id = ? AND lease_token = ? AND status = 'processing'",
                (status.value, time.time(), claim.id, claim.token),
            ).rowcount
            if marked != 1:
                raise LeaseLost(f"{claim.id}: lease taken over by another worker")
            yield tx

    def fail(self, claim: Claim, error: str, retry_at: float | None) -> bool:
        status = Status.DEAD if retry_at is None else Status.RETRYING
        with self.transaction() as tx:
            marked = tx.execute(
                "UPDATE ichido_events SET status = ?, next_attempt_at = ?, last_error = ?,"
                " lease_owner = NULL WHERE id = ? AND lease_token = ? AND status = 'processing'",
                (status.value, retry_at, error, claim.id, claim.token),
            ).rowcount
            if marked:
                tx.execute(
                    "INSERT INTO ichido_failures (event_id, attempt, failed_at, error)"
                    " VALUES (?, ?, ?, ?)",
                    (claim.id, claim.attempt, time.time(), error),
                )
        return bool(marked)

    # -- inspecting and operating ------------------------------------------------------------

    def get(self, event_id: str) -> EventRecord | None:
        conn = self._conn()
        row = conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM ichido_events WHERE id = ?", (event_id,)
        ).fetchone()
        if row is None:
            return None
        failures = conn.execute(
            "SELECT attempt, failed_at, error FROM ichido_failures WHERE event_id = ?"
            " ORDER BY failed_at",
            (event_id,),
        ).fetchall()
        return EventRecord(*row, failures=tuple(failures))

    def list(self, *, status: str | None = None, type: str | None = None,
             limit: int = 50) -> list[EventRecord]:
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if type:
            where.append("type = ?")
            params.append(type)
        sql = f"SELECT {_EVENT_COLUMNS} FROM ichido_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY received_at DESC LIMIT ?"
        return [EventRecord(*row) for row in self._conn().execute(sql, (*params, limit))]

    def requeue_dead(self, event_ids: Sequence[str] | None = None) -> int:
        sql = ("UPDATE ichido_events SET status = 'retrying', attempts = 0, next_attempt_at = ?"
               " WHERE status = 'dead'")
        params: list[object] = [time.time()]
        if event_ids is not None:
            sql += f" AND id IN ({','.join('?' for _ in event_ids)})"
            params.extend(event_ids)
        with self.transaction() as tx:
            return tx.execute(sql, params).rowcount

    def prune(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        finished = ",".join(f"'{s.value}'" for s in FINISHED)
        with self.transaction() as tx:
            gone = dict(tx.execute(
                f"SELECT status, count(*) FROM ichido_events WHERE status IN ({finished})"
                " AND received_at < ? GROUP BY status", (cutoff,)).fetchall())
            tx.execute(
                "DELETE FROM ichido_failures WHERE event_id IN (SELECT id FROM ichido_events"
                f" WHERE status IN ({finished}) AND received_at < ?)", (cutoff,))
            tx.execute(f"DELETE FROM ichido_events WHERE status IN ({finished})"
                       " AND received_at < ?", (cutoff,))
            self._count(tx, {f"pruned_{status}": n for status, n in gone.items()})
        return sum(gone.values())

    def stats(self) -> dict[str, int]:
        conn = self._conn()
        counters = dict(conn.execute(
            "SELECT name, sum(value) FROM ichido_counters GROUP BY name").fetchall())
        by_status = dict(conn.execute(
            "SELECT status, count(*) FROM ichido_events GROUP BY status").fetchall())
        return stats_from(counters, by_status)

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1 FROM ichido_events LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"SQLite is not readable: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class SqliteDialect:
    """What the migration runner needs from SQLite."""

    name = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def current_version(self, component: str) -> int:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS ichido_schema (component TEXT NOT NULL,"
            " version INTEGER NOT NULL, applied_at REAL NOT NULL, PRIMARY KEY (component, version))"
        )
        row = self.conn.execute(
            "SELECT max(version) FROM ichido_schema WHERE component = ?", (component,)
        ).fetchone()
        return row[0] or 0

    def apply(self, component: str, version: int, statements: list[str]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if self.current_version(component) < version:  # another process may be first
                for statement in statements:
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO ichido_schema (component, version, applied_at) VALUES (?, ?, ?)",
                    (component, version, time.time()),
                )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


def _first_of_each(deliveries: Sequence[Delivery], new_ids: set[str]) -> list[bool]:
    """True for the first copy of each newly stored id; later copies in the batch are duplicates."""
    accepted = []
    for delivery in deliveries:
        accepted.append(delivery.id in new_ids)
        new_ids.discard(delivery.id)
    return accepted
