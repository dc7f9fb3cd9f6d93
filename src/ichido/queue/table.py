"""The queue as a table in a SQL database: a row per item, its status, attempts and lease.

Two tables run on it: the events (where the inbox's own insert enqueues) and the outbox
(where a handler's ``enqueue`` does), with one state machine and one set of statements. Claims are
one statement; SQLite's single writer needs no row locks, PostgreSQL's workers skip each
other's locked rows (``FOR UPDATE SKIP LOCKED``). When the handlers' database is this one,
``processing`` runs them in the same transaction as the finish: one commit (I2). Who a lease
that expired is charged to is decided in the same statement (``lease_kind``, ``Lease``).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

from ichido.db.base import Transaction
from ichido.db.migrations import Step
from ichido.db.sql import SqlDatabase
from ichido.errors import LeaseLost
from ichido.queue.base import Batch, Claim, Lease, Queue, Status

DUE = "status IN ('pending', 'retrying', 'processing')"
#: the column that keeps a lease's ``Lease`` (added to both tables by their schema steps)
LEASE_KIND_COLUMN = "lease_kind INTEGER NOT NULL DEFAULT 0"
#: the queue's step on the events table: whether a lease runs its event alone, so a process
#: death is charged to that event only (I5). ``ichido.schema`` lists it with the core tables.
QUEUE_SCHEMA: list[Step] = [
    ("queue", 1, [f"ALTER TABLE ichido_events ADD COLUMN {LEASE_KIND_COLUMN}"]),
]


@dataclass(frozen=True)
class QueueTable:
    """A table that is a queue: one row per item, with the queue's columns (``status``,
    ``attempts``, ``requeued_at_attempt``, ``lease_token``, ``lease_owner``, ``lease_kind``,
    ``next_attempt_at``, ``finished_at``, ``last_error``) and a partial index on the due rows.
    Only the item's own columns are named differently from table to table."""

    name: str
    key: str  # the item's id
    kind: str  # what it is (an event's type, a message's kind)
    body: str
    object_id: str  # a column, or NULL: items of one object apply one at a time
    failures: str  # (key, attempt, failed_at, error): every failed attempt, kept
    due_index: str


EVENTS = QueueTable("ichido_events", "id", "type", "body", "object_id", "ichido_failures",
                    "ichido_events_due")
OUTBOX = QueueTable("ichido_outbox", "key", "kind", "payload", "NULL", "ichido_outbox_failures",
                    "ichido_outbox_due")


def _claim_sql(engine: str, t: QueueTable) -> str:
    """One statement that takes due items: ``attempts`` counts every attempt ever;
    ``requeued_at_attempt`` is where the current round began (``dlq retry``, a replay): a
    claim's ``attempt`` is the round's (the retry budget), its ``number`` the attempt's over
    the item's whole life (the failures' history).

    A row still ``processing`` is an attempt that never finished (its process died, or it
    outlived its lease): charged only if it ran alone, else run again alone under the same
    number (``Lease``)."""
    def returning(alias: str) -> str:
        return ", ".join(c if c == "NULL" else alias + c for c in (
            t.key, t.kind, t.body, "attempts - requeued_at_attempt", "lease_token",
            t.object_id, "requeued_at_attempt", "lease_kind"))

    # SET reads the row as it was: ``status`` and ``lease_kind`` are the last attempt's.
    unfinished = "status = 'processing'"
    charged = f"CASE WHEN {unfinished} AND lease_kind <> {Lease.ALONE:d} THEN 0 ELSE 1 END"
    kind = f"CASE WHEN {unfinished} THEN {Lease.ISOLATE:d} ELSE {Lease.SHARED:d} END"
    sets = (f"status = 'processing', attempts = attempts + {charged}, lease_kind = {kind},"
            " lease_token = lease_token + 1, lease_owner = ?, next_attempt_at = ?")
    if engine == "sqlite":
        # The hint keeps the planner on the partial index: without it SQLite may pick the
        # status index and sort the whole backlog on every claim (60 ms at 20k pending).
        return (f"UPDATE {t.name} SET {sets}"
                f" WHERE {t.key} IN (SELECT {t.key} FROM {t.name} INDEXED BY {t.due_index}"
                f" WHERE {DUE} AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?)"
                f" RETURNING {returning('')}")
    # PostgreSQL: unqualified names in SET's expressions are the target row's (``e``)
    return (f"UPDATE {t.name} e SET {sets}"
            f" FROM (SELECT {t.key} FROM {t.name} WHERE {DUE} AND next_attempt_at <= ?"
            "  ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED) due"
            f" WHERE e.{t.key} = due.{t.key} RETURNING {returning('e.')}")


class TableQueue(Queue):
    def __init__(self, database: SqlDatabase, table: QueueTable = EVENTS, *,
                 refill: Callable[[], int] | None = None) -> None:
        self.database = database
        self.table = table
        self.refill = refill
        self._claim_sql = _claim_sql(database.engine, table)

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        if self.refill is not None:
            self.refill()
        now = time.time()
        with self.database.storage("claim"), self.database.statement() as tx:
            rows = tx.execute(self._claim_sql, (owner, now + lease_seconds, now, limit)).fetchall()
        return [Claim(r[0], r[1], _bytes(r[2]), r[3], r[4], r[5], r[6], lease=Lease(r[7]))
                for r in rows]

    def alone(self, claim: Claim) -> bool:
        with self.database.storage("isolate a claim"), self.database.transaction() as tx:
            return tx.execute(
                f"UPDATE {self.table.name} SET lease_kind = ? WHERE status = 'processing'"
                f" AND {self._tokens([claim])}",
                (int(Lease.ALONE), *_token_params([claim]))).rowcount == 1

    @contextmanager
    def processing(self, claims: Sequence[Claim]) -> Iterator[Batch]:
        """One transaction for a batch of claims. On entry it fences the claims (those another
        worker took over are dropped from ``batch.claims``) and holds their Stripe objects, so
        events of one object apply one at a time. On exit it writes the finished markers
        (``batch.finish``) and commits them with everything the handlers wrote (I2)."""
        with self.database.batch(len(claims)) as tx:
            mine = self._fence(tx, claims)
            objects = sorted({c.object_id for c in claims if c.object_id and c.id in mine})
            if objects:
                self.database.lock_objects(tx, objects)
            batch = Batch(tx, [c for c in claims if c.id in mine])
            yield batch
            for status, done in batch.finished.items():
                marked = self._finish(tx, status, done)
                if marked != len(done):  # cannot happen while we hold the rows; never commit it
                    raise LeaseLost(f"{len(done) - marked} claim(s) lost while processing")
            for key, reason in batch.reasons.items():  # why it was ignored, for the operator
                tx.execute(f"UPDATE {self.table.name} SET last_error = ?"
                           f" WHERE {self.table.key} = ?", (reason, key))

    @contextmanager
    def finishing(self, claim: Claim, status: Status) -> Iterator[Transaction]:
        """A batch of one that marks ``claim`` as ``status``; raises ``LeaseLost`` on entry
        when another worker has taken the item over."""
        with self.processing([claim]) as batch:
            if not batch.claims:
                raise LeaseLost(f"{claim.id}: lease taken over by another worker")
            batch.finish(claim, status)
            yield batch.tx

    def finish(self, finished: Mapping[Status, Sequence[Claim]]) -> int:
        with self.database.storage("finish"), self.database.transaction() as tx:
            return sum(self._finish(tx, status, done) for status, done in finished.items() if done)

    def _finish(self, tx: Transaction, status: Status, done: Sequence[Claim]) -> int:
        return tx.execute(
            f"UPDATE {self.table.name} SET status = ?, finished_at = ?, next_attempt_at = NULL,"
            f" lease_owner = NULL WHERE status = 'processing' AND {self._tokens(done)}",
            (status.value, time.time(), *_token_params(done)),
        ).rowcount

    def _fence(self, tx: Transaction, claims: Sequence[Claim]) -> set[str]:
        """Lock the claimed rows that are still ours (a takeover's claim then skips them)."""
        if not claims:
            return set()
        t = self.table
        rows = tx.execute(
            f"UPDATE {t.name} SET lease_owner = lease_owner WHERE status = 'processing'"
            f" AND {self._tokens(claims)} RETURNING {t.key}", _token_params(claims)).fetchall()
        return {row[0] for row in rows}

    def fail(self, claim: Claim, error: str, retry_at: float | None) -> bool:
        status = Status.DEAD if retry_at is None else Status.RETRYING
        with self.database.storage("record a failure"), self.database.transaction() as tx:
            marked = tx.execute(
                f"UPDATE {self.table.name} SET status = ?, next_attempt_at = ?, last_error = ?,"
                f" lease_owner = NULL WHERE {self.table.key} = ? AND lease_token = ?"
                " AND status = 'processing'",
                (status.value, retry_at, error, claim.id, claim.token),
            ).rowcount
            if marked:
                tx.execute(f"INSERT INTO {self.table.failures} VALUES (?, ?, ?, ?)",
                           (claim.id, claim.number, time.time(), error))
        return bool(marked)

    def _tokens(self, claims: Sequence[Claim]) -> str:
        return (f"({self.table.key}, lease_token) IN"
                f" (VALUES {', '.join('(?, ?)' for _ in claims)})")


def _bytes(body: bytes | memoryview | str) -> bytes:
    """A body as bytes, whether the column is binary (events) or text (outbox payloads)."""
    return body.encode() if isinstance(body, str) else bytes(body)


def _token_params(claims: Sequence[Claim]) -> list[object]:
    return [value for claim in claims for value in (claim.id, claim.token)]

