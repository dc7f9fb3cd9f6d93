"""The outbox (I7): effects that leave the database are written in the same transaction as the
state change that causes them, and sent afterwards by a dispatcher.

Each row's key is also the idempotency key its sender passes on (Stripe's ``Idempotency-Key``,
a mail file's name, a Message-ID). A crash between commit and send sends again with the same
key, and the receiving side sees one effect.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from typing import Any, Callable, Mapping

import orjson

from ichido.db.base import Database, Transaction
from ichido.db.migrations import Step
from ichido.queue.base import RUNNING, Claim, Status, retry_at
from ichido.queue.table import DUE, LEASE_KIND_COLUMN, OUTBOX, TableQueue
from ichido.worker import drain, poll

# The public API (docs/api.md): what an application may import from here.
__all__ = ["OUTBOX_SCHEMA", "OutboxDispatcher", "Sender", "enqueue"]

log = logging.getLogger("ichido.outbox")

OUTBOX_SCHEMA: list[Step] = [
    ("outbox", 1, [
        """CREATE TABLE ichido_outbox (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_token BIGINT NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE PRECISION,
            sent_at DOUBLE PRECISION,
            last_error TEXT
        )""",
        "CREATE INDEX ichido_outbox_due ON ichido_outbox (next_attempt_at) WHERE status = 'pending'",
    ]),
    # The outbox on the events' queue machinery (one state machine, one set of statements):
    # the queue's columns and statuses ('sent' is 'processed'; a row that failed or whose
    # claim ran out is 'retrying'), and the history of every failed attempt.
    ("outbox", 2, [
        "ALTER TABLE ichido_outbox ADD COLUMN lease_owner TEXT",
        "ALTER TABLE ichido_outbox ADD COLUMN finished_at DOUBLE PRECISION",
        "ALTER TABLE ichido_outbox ADD COLUMN requeued_at_attempt INTEGER NOT NULL DEFAULT 0",
        "UPDATE ichido_outbox SET status = 'processed', finished_at = sent_at"
        " WHERE status = 'sent'",
        "UPDATE ichido_outbox SET status = 'retrying' WHERE status = 'pending' AND attempts > 0",
        "DROP INDEX ichido_outbox_due",
        f"CREATE INDEX ichido_outbox_due ON ichido_outbox (next_attempt_at) WHERE {DUE}",
        """CREATE TABLE ichido_outbox_failures (
            key TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            failed_at DOUBLE PRECISION NOT NULL,
            error TEXT NOT NULL
        )""",
        "CREATE INDEX ichido_outbox_failures_key ON ichido_outbox_failures (key)",
    ]),
    # Whether a lease runs its message alone: a process death is charged to that one only.
    ("outbox", 3, [f"ALTER TABLE ichido_outbox ADD COLUMN {LEASE_KIND_COLUMN}"]),
]

#: sends one message; raises to have it retried. Gets the row's key (its idempotency key).
Sender = Callable[[str, dict[str, Any]], None]


def enqueue(tx: Transaction, kind: str, key: str, payload: Mapping[str, Any]) -> bool:
    """Add a message in the caller's transaction; a key already queued adds nothing."""
    now = time.time()
    return tx.execute(
        "INSERT INTO ichido_outbox (key, kind, payload, created_at, next_attempt_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (key, kind, orjson.dumps(dict(payload)).decode(), now, now),
    ).rowcount == 1


class OutboxDispatcher:
    """Sends due outbox rows: claimed under a lease, finished, or failed for a retry with
    backoff and then dead, by the same queue as events (``TableQueue`` on ``OUTBOX``).
    ``store`` gives the database on first use, so building an app does not open it
    (``ichido migrate`` must be able to load an app whose schema is behind)."""

    def __init__(self, store: Callable[[], Database], senders: Mapping[str, Sender], *,
                 lease_seconds: float = 60,
                 max_attempts: int = 10, retry_base: float = 1.0, retry_cap: float = 600.0,
                 wake: threading.Event | None = None, poll_interval: float = 0.2) -> None:
        self.store = store
        self.senders = dict(senders)
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.wake = wake or threading.Event()
        self.poll_interval = poll_interval
        self.name = f"{socket.gethostname()}:{os.getpid()}:outbox"
        self._queue: TableQueue | None = None

    @property
    def queue(self) -> TableQueue:
        database = self.store()
        if self._queue is None or self._queue.database is not database:
            self._queue = TableQueue(database, OUTBOX)  # type: ignore[arg-type]  # SQL stores only
        return self._queue

    def dispatch_once(self, limit: int = 32) -> int:
        claims = self.queue.claim(self.name, limit, self.lease_seconds)
        for claim in claims:
            self._send(claim)
        return len(claims)

    def _send(self, claim: Claim) -> None:
        """Send one message. One whose last attempt died in company (a sender that kills the
        process takes the claim's unsent messages with it) is sent alone in the process, and
        marked so first: a death now is charged to it and to no other (I5)."""
        if claim.attempt > self.max_attempts:
            self.queue.give_up(claim, "dispatcher")
        elif not claim.isolate:
            with RUNNING.together():
                self._attempt(claim)
        else:
            with RUNNING.alone():
                if self.queue.alone(claim):  # else another dispatcher took it over
                    self._attempt(claim)

    def _attempt(self, claim: Claim) -> None:
        try:
            self.senders[claim.type](claim.id, orjson.loads(claim.body))
        except Exception:  # kept with its traceback on the row, retried, then dead
            error = traceback.format_exc(limit=-6)
            self.queue.fail(claim, error, retry_at(claim.attempt, self.max_attempts,
                                                   self.retry_base, self.retry_cap))
            log.warning("outbox %s (%s) attempt %d failed: %s", claim.id, claim.type,
                        claim.attempt, error.strip().splitlines()[-1])
            return
        self.queue.finish({Status.PROCESSED: [claim]})

    def drain(self) -> int:
        return drain(self.dispatch_once)

    def run(self, stop: threading.Event) -> None:
        poll("outbox", self.dispatch_once, stop, self.wake, self.poll_interval)

    def counts(self) -> dict[str, int]:
        with self.store().reading() as tx:
            return dict(tx.execute("SELECT status, count(*) FROM ichido_outbox GROUP BY status")
                        .fetchall())
