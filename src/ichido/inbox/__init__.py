"""The inbox role, on the engine of the database it is given (``open_inbox``)."""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Sequence

from ichido.config import Settings
from ichido.db.base import Database
from ichido.db.migrations import Step
from ichido.errors import ConfigError
from ichido.inbox.base import Cursor, EventFilter, EventRecord, Inbox

if TYPE_CHECKING:
    from ichido.inbox.sql import SqlInbox

__all__ = ["Cursor", "EventFilter", "EventRecord", "Inbox", "open_inbox", "sql_inbox"]


def process_shard() -> str:
    """A name for this process's counter rows, so concurrent writers never share a hot row."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def open_inbox(settings: Settings, database: Database | None = None, *, schema: Sequence[Step],
               migrate: bool | None = None, steps: Sequence[Step] = ()) -> Inbox:
    """The inbox for ``settings``, in ``database``, with ``schema`` (the core tables, which
    ``ichido.schema`` composes: ``ichido.schema.open_inbox`` passes them) and its engine's own
    steps brought up to date (``migrate`` as in ``open_database``). ``database`` is not the
    inbox's to close; without one, the inbox opens its own (with ``steps``) and closes it with
    itself."""
    from ichido.db import open_database
    from ichido.inbox.sql import SqlInbox

    own = database is None
    if database is None:
        database = open_database(settings, migrate=migrate, steps=steps)
    engine = getattr(database, "engine", None)
    inbox: Inbox | None = None  # closed again if its set-up fails
    sql: SqlInbox | None = None  # an inbox in SQL tables: its schema, and its database to close
    try:  # each engine's database class is asserted, which also narrows its type
        if engine == "sqlite":
            from ichido.db.sqlite import SqliteDatabase
            from ichido.inbox.sqlite import SqliteInbox

            assert isinstance(database, SqliteDatabase)
            inbox = sql = SqliteInbox(database, shard=process_shard())
        elif engine == "postgresql":
            from ichido.db.postgres import PostgresDatabase
            from ichido.inbox.postgres import PostgresInbox

            assert isinstance(database, PostgresDatabase)
            inbox = sql = PostgresInbox(database, shard=process_shard())
        elif engine == "dynamodb":  # its own items, no SQL schema (ichido[aws])
            from ichido.db.dynamodb import DynamoDatabase
            from ichido.inbox.dynamodb import DynamoInbox

            assert isinstance(database, DynamoDatabase)
            inbox = DynamoInbox(database, shard=process_shard())
        else:
            raise ConfigError(f"no inbox for a database of type {type(database).__name__}")
        if sql is not None:
            database.prepare([*schema, *sql.schema], migrate)
        inbox.bind()
    except BaseException:
        if inbox is not None:
            inbox.close()  # its own files (SQLite's intake); not the database
        if own:
            database.close()
        raise
    if own and sql is not None:  # DynamoDB's database holds nothing to close
        sql.owned_database = sql.database
    return inbox


def sql_inbox(inbox: Inbox, needed_by: str) -> SqlInbox:
    """``inbox``, which ``needed_by`` needs in SQL tables: the table queue, the dashboard,
    replays, alerts and the reconciler keep their own rows beside its events."""
    from ichido.inbox.sql import SqlInbox

    if isinstance(inbox, SqlInbox):
        return inbox
    raise ConfigError(f"{needed_by} needs a SQL store (SQLite or PostgreSQL), not"
                      f" {type(inbox).__name__}")
