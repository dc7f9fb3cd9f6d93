"""The queue as a table in a SQL database: a row per item, its status, attempts and lease.

On the events table, the inbox's own insert enqueues (nothing to send anywhere). Claims are
one statement; SQLite's single writer needs no row locks, PostgreSQL's workers skip each
other's locked rows (``FOR UPDATE SKIP LOCKED``). When the handlers' database is this one,
``processing`` runs them in the same transaction as the finish: one commit (I2).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

from ichido.db.base import Transaction
from ichido.db.sql import SqlDatabase
from ichido.errors import LeaseLost
from ichido.queue.base import Batch, Claim, Queue, Status

DUE = "status IN ('pending', 'retrying', 'processing')"

_CLAIM = {
    # The hint keeps the planner on the partial index: without it SQLite may pick the status
    # index and sort the whole backlog on every claim (60 ms at 20k pending).
    "sqlite": (
        "UPDATE ichido_events SET status = 'processing', attempts = attempts + 1,"
        " lease_token = lease_token + 1, lease_owner = ?, next_attempt_at = ?"
        " WHERE id IN (SELECT id FROM ichido_events INDEXED BY ichido_events_due"
        f" WHERE {DUE} AND next_attempt_at <= ?"
        " ORDER BY next_attempt_at LIMIT ?)"
        " RETURNING id, type, body, attempts, lease_token, object_id"),
    "postgresql": (
        "UPDATE ichido_events e SET status = 'processing', attempts = e.attempts + 1,"
        " lease_token = e.lease_token + 1, lease_owner = ?, next_attempt_at = ?"
        f" FROM (SELECT id FROM ichido_events WHERE {DUE} AND next_attempt_at <= ?"
        "  ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED) due"
        " WHERE e.id = due.id"
        " RETURNING e.id, e.type, e.body, e.attempts, e.lease_token, e.object_id"),
}


class TableQueue(Queue):
    def __init__(self, database: SqlDatabase) -> None:
        self.database = database
        self._claim_sql = _CLAIM[database.engine]

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        now = time.time()
        with self.database.storage("claim"), self.database.statement() as tx:
            rows = tx.execute(self._claim_sql, (owner, now + lease_seconds, now, limit)).fetchall()
        return [Claim(r[0], r[1], bytes(r[2]), *r[3:]) for r in rows]

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
            "UPDATE ichido_events SET status = ?, finished_at = ?, next_attempt_at = NULL,"
            f" lease_owner = NULL WHERE status = 'processing' AND {_tokens(done)}",
            (status.value, time.time(), *_token_params(done)),
        ).rowcount

    def _fence(self, tx: Transaction, claims: Sequence[Claim]) -> set[str]:
        """Lock the claimed rows that are still ours (a takeover's claim then skips them)."""
        if not claims:
            return set()
        rows = tx.execute(
            "UPDATE ichido_events SET lease_owner = lease_owner WHERE status = 'processing'"
            f" AND {_tokens(claims)} RETURNING id", _token_params(claims)).fetchall()
        return {row[0] for row in rows}

    def fail(self, claim: Claim, error: str, retry_at: float | None) -> bool:
        status = Status.DEAD if retry_at is None else Status.RETRYING
        with self.database.storage("record a failure"), self.database.transaction() as tx:
            marked = tx.execute(
                "UPDATE ichido_events SET status = ?, next_attempt_at = ?, last_error = ?,"
                " lease_owner = NULL WHERE id = ? AND lease_token = ? AND status = 'processing'",
                (status.value, retry_at, error, claim.id, claim.token),
            ).rowcount
            if marked:
                tx.execute("INSERT INTO ichido_failures (event_id, attempt, failed_at, error)"
                           " VALUES (?, ?, ?, ?)", (claim.id, claim.attempt, time.time(), error))
        return bool(marked)


def _tokens(claims: Sequence[Claim]) -> str:
    return f"(id, lease_token) IN (VALUES {', '.join('(?, ?)' for _ in claims)})"


def _token_params(claims: Sequence[Claim]) -> list[object]:
    return [value for claim in claims for value in (claim.id, claim.token)]

