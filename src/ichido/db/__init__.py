"""The database role, picked by ``ICHIDO_DATABASE_URL``: ``sqlite:///…`` (default) or
``postgresql://…``."""

from __future__ import annotations

from typing import Sequence

from ichido.config import Settings
from ichido.db.base import Database, Transaction
from ichido.db.migrations import Step
from ichido.errors import ConfigError
from ichido.extras import require

__all__ = ["Database", "Step", "Transaction", "open_database"]


def open_database(settings: Settings, *, migrate: bool | None = None,
                  steps: Sequence[Step] = ()) -> Database:
    """Open the database named by ``settings.database_url`` and bring ``steps`` up to date.

    ``migrate=None`` is each engine's default: the embedded SQLite file sets itself up (zero
    set-up), PostgreSQL only checks and asks for ``ichido migrate`` when it is behind.
    """
    url = settings.database_url
    scheme = url.split(":", 1)[0]
    database: Database
    if scheme == "sqlite":
        from ichido.db.sqlite import SqliteDatabase

        database = SqliteDatabase.from_url(url, synchronous=settings.sqlite_synchronous)
    elif scheme in ("postgresql", "postgres"):
        require("postgres", needed_by=f"ICHIDO_DATABASE_URL is {scheme}://…")
        from ichido.db.postgres import PostgresDatabase

        database = PostgresDatabase(url, pool_size=settings.db_pool_size)
    elif scheme == "dynamodb":  # dynamodb://TABLE, the AWS layouts' store (ichido[aws])
        require("aws", needed_by="ICHIDO_DATABASE_URL is dynamodb://…")
        from ichido.db.dynamodb import DynamoDatabase

        database = DynamoDatabase.from_url(url)
    else:
        raise ConfigError(f"unsupported ICHIDO_DATABASE_URL scheme {scheme!r}: use sqlite:/// or"
                          " postgresql://")
    try:
        database.prepare(steps, migrate)
    except BaseException:
        database.close()  # also when the schema is behind: no pool left running
        raise
    return database
