"""The inbox role, on the engine of the database it is given (``open_inbox``)."""

from __future__ import annotations

import os
import socket
import uuid

from ichido.config import Settings
from ichido.db.base import Database
from ichido.errors import ConfigError
from ichido.inbox.base import EventRecord, Inbox

__all__ = ["EventRecord", "Inbox", "open_inbox"]


def process_shard() -> str:
    """A name for this process's counter rows, so concurrent writers never share a hot row."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def open_inbox(settings: Settings, database: Database, *, migrate: bool | None = None) -> Inbox:
    """The inbox for ``settings``, in ``database``, its schema brought up to date (``migrate``
    as in ``open_database``). The inbox does not own ``database``: its opener closes it."""
    from ichido.inbox.sql import SCHEMA

    engine = getattr(database, "engine", None)
    inbox: Inbox
    if engine == "sqlite":
        from ichido.inbox.sqlite import SqliteInbox

        inbox = SqliteInbox(database, shard=process_shard())  # type: ignore[arg-type]
    elif engine == "postgresql":
        from ichido.inbox.postgres import PostgresInbox

        inbox = PostgresInbox(database, shard=process_shard())  # type: ignore[arg-type]
    elif engine == "dynamodb":  # its own items, no SQL schema
        from ichido.inbox.dynamodb import DynamoInbox

        return DynamoInbox(database, shard=process_shard())  # type: ignore[arg-type]
    else:
        raise ConfigError(f"no inbox for a database of type {type(database).__name__}")
    database.prepare(SCHEMA, migrate)
    return inbox
