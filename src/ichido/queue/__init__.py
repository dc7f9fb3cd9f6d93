"""The queue role: claim with a lease, finish, fail with retry/backoff, dead letter."""

from __future__ import annotations

from typing import Any

from ichido.config import Settings
from ichido.errors import ConfigError
from ichido.queue.base import FINISHED, Batch, Claim, Queue, Status, backoff_seconds

__all__ = ["FINISHED", "Batch", "Claim", "Queue", "Status", "backoff_seconds", "open_queue"]


def open_queue(settings: Settings, inbox: Any) -> Queue:
    """The queue of the events ``inbox`` stores. On a SQL inbox it is the inbox's own table."""
    from ichido.db.sql import SqlDatabase
    from ichido.queue.table import TableQueue

    database = getattr(inbox, "database", None)
    if isinstance(database, SqlDatabase):
        return TableQueue(database)
    raise ConfigError(f"no queue for an inbox of type {type(inbox).__name__}")
