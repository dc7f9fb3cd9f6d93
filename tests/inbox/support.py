"""What the inbox and queue contract tests share: the roles of one database URL, and the few
steps the tests take with them (a delivery, a claim, a retake after an expired lease, an effect,
an older event). Each role is used as itself: what a test calls on the inbox is the inbox's.
"""

from __future__ import annotations

import threading
from ichido.config import Settings
from ichido.db import open_database
from ichido.db.base import Database, Transaction
from ichido.db.sql import SqlDatabase
from ichido.event import Delivery, parse_delivery
from ichido.inbox import sql_inbox
from ichido.schema import open_inbox
from ichido.inbox.seams import AdminLog
from ichido.inbox.sql import SqlInbox
from ichido.queue import open_queue
from ichido.queue.base import Claim, Queue
from ichido.queue.table import TableQueue
from tests.support import make_event, wait_until

DAY = 86_400.0
COUNTERS = ("received", "unique", "duplicates_cache", "duplicates_durable")


class Stores:
    """The database, the inbox on it and the queue in the inbox's table, as a process opens
    them (on SQL engines the queue is the inbox's own table)."""

    def __init__(self, database_url: str) -> None:
        settings = Settings(database_url=database_url)
        self.database = _sql(open_database(settings))
        self.inbox: SqlInbox = sql_inbox(open_inbox(settings, self.database), "the contract")
        queue = open_queue(settings, self.inbox)
        assert isinstance(queue, TableQueue)  # the inbox's own table
        self.queue = queue

    def close(self) -> None:
        self.queue.close()
        self.inbox.close()
        self.database.close()


def _sql(database: Database) -> SqlDatabase:
    assert isinstance(database, SqlDatabase)
    return database


def open_stores(database_url: str) -> Stores:
    return Stores(database_url)


def run_then_close(threads: list[threading.Thread], stores: list[Stores]) -> None:
    """Start the threads together, wait for each (a minute at most), then close the extra
    stores they went through."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()


def delivery(type: str = "charge.succeeded", **kwargs) -> Delivery:
    return parse_delivery(make_event(type, **kwargs))


def counters(inbox: AdminLog) -> dict[str, int]:
    stats = inbox.stats()
    return {name: stats[name] for name in COUNTERS}


def claim_one(queue: Queue, owner: str = "w", lease: float = 60.0) -> Claim:
    [claim] = queue.claim(owner, 1, lease)
    return claim


def retake(queue: Queue, owner: str = "other", lease: float = 60.0) -> Claim:
    """Claim again once an expired (zero-length) lease makes the event due."""
    return wait_until(lambda: queue.claim(owner, 1, lease), message="the retake")[0]


def write_effect(tx: Transaction, claim: Claim) -> None:
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (claim.id, claim.type, claim.attempt))


def age(database: Database, seconds: float, *event_ids: str) -> None:
    with database.transaction() as tx:
        for event_id in event_ids:
            tx.execute("UPDATE ichido_events SET received_at = received_at - ? WHERE id = ?",
                       (seconds, event_id))
