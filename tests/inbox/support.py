"""What the inbox contract tests share: the roles of one database URL, and the few steps the tests
take with them (a delivery, a claim, a retake after an expired lease, an effect, an older event).
"""

from __future__ import annotations

import threading

from ichido.config import Settings
from ichido.event import Delivery, parse_delivery
from ichido.queue import open_queue
from tests.support import Store, make_event, wait_until

DAY = 86_400.0
COUNTERS = ("received", "unique", "duplicates_cache", "duplicates_durable")


class Roles:
    """The database, inbox and queue of one URL, for tests that cross them (on SQL engines the
    queue is the inbox's table): each name is looked up in the inbox, the queue, the database."""

    def __init__(self, database_url: str) -> None:
        self.store = Store(database_url)
        self.queue = open_queue(Settings(database_url=database_url), self.store.inbox)

    def __getattr__(self, name: str):
        for role in (self.store.inbox, self.queue, self.store.database):
            if hasattr(role, name):
                return getattr(role, name)
        raise AttributeError(name)

    def close(self) -> None:
        self.queue.close()
        self.store.close()


Inbox = Roles


def open_inbox(settings: Settings) -> Roles:
    return Roles(settings.database_url)


def run_then_close(threads: list[threading.Thread], stores: list[Roles]) -> None:
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


def counters(inbox: Inbox) -> dict[str, int]:
    stats = inbox.stats()
    return {name: stats[name] for name in COUNTERS}


def claim_one(inbox: Inbox, owner: str = "w", lease: float = 60.0):
    [claim] = inbox.claim(owner, 1, lease)
    return claim


def retake(inbox: Inbox, owner: str = "other", lease: float = 60.0):
    """Claim again once an expired (zero-length) lease makes the event due."""
    return wait_until(lambda: inbox.claim(owner, 1, lease), message="the retake")[0]


def write_effect(tx, claim) -> None:
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (claim.id, claim.type, claim.attempt))


def age(inbox: Inbox, seconds: float, *event_ids: str) -> None:
    with inbox.transaction() as tx:
        for event_id in event_ids:
            tx.execute("UPDATE ichido_events SET received_at = received_at - ? WHERE id = ?",
                       (seconds, event_id))
