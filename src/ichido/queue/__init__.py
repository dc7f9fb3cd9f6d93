"""The queue role: claim with a lease, finish, fail with retry/backoff, dead letter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ichido.config import Settings
from ichido.errors import ConfigError
from ichido.queue.base import (FINISHED, Batch, Claim, Claims, OutboxQueue, Queue, Status,
                               WorkerQueue, backoff_seconds, retry_at)

if TYPE_CHECKING:
    from ichido.inbox.base import Inbox

__all__ = ["FINISHED", "Batch", "Claim", "Claims", "OutboxQueue", "Queue", "Status",
           "WorkerQueue", "backoff_seconds", "open_queue", "retry_at"]


def open_queue(settings: Settings, inbox: Inbox) -> Queue:
    """The queue of the events ``inbox`` stores. On a SQL inbox it is the inbox's own table."""
    from ichido.inbox.settling import Settling
    from ichido.inbox.sql import SqlInbox
    from ichido.queue.table import TableQueue

    if isinstance(inbox, SqlInbox):
        # an inbox that takes deliveries in somewhere else first (SQLite's intake) moves them
        # into the table before each claim
        refill = inbox.settle_intake if isinstance(inbox, Settling) else None
        return TableQueue(inbox.database, inbox.queue_table, refill=refill)
    raise ConfigError(f"no queue for an inbox of type {type(inbox).__name__}")
