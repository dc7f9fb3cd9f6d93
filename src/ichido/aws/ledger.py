"""The worker's durable marker on the SQS layout: where the queue, not the store, took the
delivery, the store learns of an event only in the worker's transaction.

``applying`` opens one transaction, writes the processed marker unless the event already has
one, and hands the handlers the same transaction (I2): both commit, or neither. A second copy
(a Stripe redelivery, SQS's at-least-once delivery, a redriven dead letter that had in fact
been applied) finds the marker and is acknowledged as a durable duplicate. The change's key
(``ichido.thin.twins``) is claimed in the same transaction, so that a snapshot event and its thin
twin apply once, and a failed attempt leaves the change free. This module holds
the protocol and its SQL engine (PostgreSQL on RDS, or SQLite for ``ichido aws local``);
DynamoDB's is ``ichido.aws.dynamodb_ledger``.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Iterator, Protocol

from ichido.event import Delivery
from ichido.db.base import Transaction
from ichido.db.sql import SqlDatabase
from ichido.queue.base import Status
from ichido.thin import twins


class Ledger(Protocol):
    """What the Lambda worker (``EventApplier``) and, on the SQS layout, the receiver's cache
    hits (``count``) write to."""

    def applying(self, delivery: Delivery, status: Status, attempt: int, received_at: float,
                 *, change: str | None = None,
                 note: str | None = None) -> AbstractContextManager[Transaction | None]:
        """One transaction with the marker written; ``None`` when the event is known to have
        been applied before (nothing is written then but the duplicate's count). On DynamoDB a
        copy may get a transaction too, when nothing was read first: the marker's condition
        refuses it at commit, and the handlers' writes with it. ``change``: the change key
        (``ichido.thin.twins``) claimed in the same transaction; when another event holds it,
        the event is finished as ``twin``, nothing of the handlers' is written, and
        ``TwinApplied`` is raised. ``note``: the marker's ``last_error`` (why it is finished so)."""

    def record_failure(self, delivery: Delivery, attempt: int, error: str, *,
                       dead: bool) -> None:
        """Keep a failed attempt's error with the event; ``dead`` when SQS moves it next."""

    def count(self, increments: dict[str, int]) -> None:
        """Add to the counters (the receiver's cache hits, which never reach a worker)."""


class TwinApplied(Exception):
    """The event's change was applied by its twin (``ichido.thin.twins``): the event is
    finished as ``twin`` and its handlers' writes are not committed. Raised by ``applying``
    (before the handlers on SQL, where the key is taken first; at commit on DynamoDB, where the
    claim's condition cancels the transaction, the handlers' writes with it)."""

    def __init__(self, event_id: str, holder: str) -> None:
        super().__init__(f"{event_id} is the twin of {holder}, which applied the change")
        self.holder = holder


def twin_note(holder: str) -> str:
    """A twin's ``last_error``, as the core worker writes it."""
    return f"twin of {holder}, which applied the change"


class StreamsLedger(Ledger, Protocol):
    """The Streams worker's ledger: a record carries no receive count, so the worker reads the
    attempts made so far from the event's state (DynamoDB only: Streams are its own)."""

    def state(self, event_id: str) -> dict[str, Any] | None:
        """The event's item, read consistently; the next ``applying`` of it may reuse it."""


# Marker and failure alike upsert the event row, unless it is finished: a finished event is
# never touched again, so the marker's RETURNING tells new from applied in one statement.
# SQLite keeps bodies apart from the rows (``inbox/sqlite.py``): ``{body}`` is empty there.
_MARK = """
INSERT INTO ichido_events (id, type, created, object_id, received_at, status, attempts,
                           next_attempt_at, finished_at, last_error{body})
VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?{body_value})
ON CONFLICT (id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
    finished_at = excluded.finished_at, last_error = excluded.last_error
WHERE ichido_events.status NOT IN ('processed', 'ignored', 'stale', 'twin')
RETURNING id
"""
_MARK_WITH_BODY = _MARK.format(body=", body", body_value=", ?")
_MARK_APART = _MARK.format(body="", body_value="")
_BODY_APART = "INSERT INTO ichido_bodies (id, body) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"

_COUNT = ("INSERT INTO ichido_counters (shard, name, value) VALUES (?, ?, ?)"
          " ON CONFLICT (shard, name) DO UPDATE SET value = ichido_counters.value + excluded.value")


class SqlLedger:
    """On a SQL database with the inbox's schema (its transactions, its per-object lock)."""

    def __init__(self, database: SqlDatabase, shard: str) -> None:
        self.database = database
        self.shard = shard
        self._bodies_apart = database.engine == "sqlite"

    def _mark(self, tx: Transaction, delivery: Delivery, received_at: float, status: Status,
              attempt: int, finished_at: float | None, note: str | None) -> bool:
        """Upsert the event's row unless it is finished; whether it was (new or unfinished)."""
        columns = (delivery.id, delivery.type, delivery.created, delivery.object_id,
                   received_at, status.value, attempt, finished_at, note)
        if not self._bodies_apart:
            return tx.execute(_MARK_WITH_BODY, (*columns, delivery.body)).fetchone() is not None
        if tx.execute(_MARK_APART, columns).fetchone() is None:
            return False
        tx.execute(_BODY_APART, (delivery.id, delivery.body))
        return True

    @contextmanager
    def applying(self, delivery: Delivery, status: Status, attempt: int, received_at: float,
                 *, change: str | None = None,
                 note: str | None = None) -> Iterator[Transaction | None]:
        with self.database.transaction() as tx:
            if delivery.object_id:  # one object's events apply one at a time (I4, I8)
                self.database.lock_objects(tx, [delivery.object_id])
            if not self._mark(tx, delivery, received_at, status, attempt, time.time(), note):
                self._count(tx, {"received": 1, "duplicates_durable": 1})
                yield None
                return
            self._count(tx, {"received": 1, "unique": 1})
            held = twins.hold(tx, [(delivery.id, change)]) if change else {}
            if not held:
                yield tx
                return
            tx.execute("UPDATE ichido_events SET status = ?, last_error = ? WHERE id = ?",
                       (Status.TWIN.value, twin_note(held[delivery.id]), delivery.id))
        raise TwinApplied(delivery.id, held[delivery.id])  # committed: the event is finished

    def record_failure(self, delivery: Delivery, attempt: int, error: str, *,
                       dead: bool) -> None:
        status = Status.DEAD if dead else Status.RETRYING
        with self.database.transaction() as tx:
            if self._mark(tx, delivery, time.time(), status, attempt, None, error):
                tx.execute("INSERT INTO ichido_failures (event_id, attempt, failed_at, error)"
                           " VALUES (?, ?, ?, ?)", (delivery.id, attempt, time.time(), error))

    def count(self, increments: dict[str, int]) -> None:
        with self.database.transaction() as tx:
            self._count(tx, increments)

    def _count(self, tx: Transaction, increments: dict[str, int]) -> None:
        rows = [(self.shard, name, value) for name, value in increments.items() if value]
        if rows:
            tx.executemany(_COUNT, rows)

