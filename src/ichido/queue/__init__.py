"""The queue role: claim with a lease, finish, fail with retry/backoff, dead letter."""

from __future__ import annotations

from typing import Any

from ichido.config import Settings
from ichido.errors import ConfigError
from ichido.queue.base import FINISHED, Batch, Claim, Queue, Status, backoff_seconds, retry_at

__all__ = ["FINISHED", "Batch", "Claim", "Queue", "Status", "backoff_seconds", "open_queue",
           "retry_at"]


def open_queue(settings: Settings, inbox: Any) -> Queue:
    """The queue of the events ``inbox`` stores. On a SQL inbox it is the inbox's own table."""
    from ichido.db.sql import SqlDatabase
    from ichido.queue.table import TableQueue

    database = getattr(inbox, "database", None)
    if isinstance(database, SqlDatabase):
        # an inbox that takes deliveries in somewhere else first (SQLite's intake) moves them
        # into the table before each claim
        return TableQueue(database, refill=getattr(inbox, "settle_intake", None))
    raise ConfigError(f"no queue for an inbox of type {type(inbox).__name__}")
