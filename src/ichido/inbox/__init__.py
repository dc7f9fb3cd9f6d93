"""The inbox role, on the engine of the database it is given (``open_inbox``)."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Sequence

from ichido.config import Settings
from ichido.db.base import Database
from ichido.db.migrations import Step
from ichido.errors import ConfigError
from ichido.inbox.base import Cursor, EventFilter, EventRecord, Inbox

__all__ = ["Cursor", "EventFilter", "EventRecord", "Inbox", "open_inbox"]


def process_shard() -> str:
    """A name for this process's counter rows, so concurrent writers never share a hot row."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def open_inbox(settings: Settings, database: Database | None = None, *,
               migrate: bool | None = None, steps: Sequence[Step] = ()) -> Inbox:
    """The inbox for ``settings``, in ``database``, its schema brought up to date (``migrate``
    as in ``open_database``). ``database`` is not the inbox's to close; without one, the inbox
    opens its own (with ``steps``) and closes it with itself."""
    from ichido.db import open_database

    own = database is None
    if database is None:
        database = open_database(settings, migrate=migrate, steps=steps)
    engine = getattr(database, "engine", None)
    inbox: Inbox | None = None
    try:
        if engine == "sqlite":
            from ichido.inbox.sqlite import SqliteInbox

            inbox = SqliteInbox(database, shard=process_shard())  # type: ignore[arg-type]
        elif engine == "postgresql":
            from ichido.inbox.postgres import PostgresInbox

            inbox = PostgresInbox(database, shard=process_shard())  # type: ignore[arg-type]
        elif engine == "dynamodb":  # its own items, no SQL schema (ichido[aws])
            from ichido.inbox.dynamodb import DynamoInbox

            inbox = DynamoInbox(database, shard=process_shard())  # type: ignore[arg-type]
        else:
            raise ConfigError(f"no inbox for a database of type {type(database).__name__}")
        if engine != "dynamodb":
            database.prepare(inbox.schema, migrate)  # type: ignore[attr-defined]
        inbox.bind()
    except BaseException:
        if inbox is not None:
            inbox.close()  # its own files (SQLite's intake); not the database
        if own:
            database.close()
        raise
    if own:
        inbox.owned_database = database  # type: ignore[attr-defined]
    return inbox
