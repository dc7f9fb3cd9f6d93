"""The outbox (I7): effects that leave the database are written in the same transaction as the
state change that causes them, and sent afterwards by a dispatcher.

Each row's key is also the idempotency key its sender passes on (Stripe's ``Idempotency-Key``,
a mail file's name, a Message-ID). A crash between commit and send sends again with the same
key, and the receiving side sees one effect.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable, Mapping

import orjson

from ichido.db.base import Database, Transaction
from ichido.db.migrations import Step
from ichido.queue.base import backoff_seconds
from ichido.worker import drain, poll

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
    """Sends due outbox rows. ``store`` gives the database on first use, so building an app
    does not open it (``ichido migrate`` must be able to load an app whose schema is behind)."""

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

    def dispatch_once(self, limit: int = 32) -> int:
        now = time.time()
        due = "status = 'pending' AND next_attempt_at <= ?"
        with self.store().transaction() as tx:
            rows = tx.execute(
                "UPDATE ichido_outbox SET attempts = attempts + 1, lease_token = lease_token + 1,"
                f" next_attempt_at = ? WHERE {due} AND key IN (SELECT key FROM ichido_outbox"
                f" WHERE {due} ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING key, kind, payload, attempts, lease_token",
                (now + self.lease_seconds, now, now, limit),
            ).fetchall()
        for key, kind, payload, attempts, token in rows:
            self._send(key, kind, orjson.loads(payload), attempts, token)
        return len(rows)

    def _send(self, key: str, kind: str, payload: dict[str, Any], attempt: int, token: int) -> None:
        try:
            sender = self.senders[kind]
            sender(key, payload)
        except Exception:  # kept with its traceback on the row, retried, then dead
            error = traceback.format_exc(limit=-6)
            dead = attempt >= self.max_attempts
            retry_at = None if dead else time.time() + backoff_seconds(
                attempt, self.retry_base, self.retry_cap)
            with self.store().transaction() as tx:
                tx.execute("UPDATE ichido_outbox SET status = ?, next_attempt_at = ?,"
                           " last_error = ? WHERE key = ? AND lease_token = ?",
                           ("dead" if dead else "pending", retry_at, error, key, token))
            log.warning("outbox %s (%s) attempt %d failed: %s", key, kind, attempt,
                        error.strip().splitlines()[-1])
            return
        with self.store().transaction() as tx:
            tx.execute("UPDATE ichido_outbox SET status = 'sent', sent_at = ?, last_error = NULL"
                       " WHERE key = ? AND lease_token = ?", (time.time(), key, token))

    def drain(self) -> int:
        return drain(self.dispatch_once)

    def run(self, stop: threading.Event) -> None:
        poll("outbox", self.dispatch_once, stop, self.wake, self.poll_interval)

    def counts(self) -> dict[str, int]:
        with self.store().reading() as tx:
            return dict(tx.execute("SELECT status, count(*) FROM ichido_outbox GROUP BY status")
                        .fetchall())
