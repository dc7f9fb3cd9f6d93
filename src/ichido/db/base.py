"""The database role: where handlers write, in transactions, and where domain state lives.

One ``Database`` per engine (``sqlite.py``, ``postgres.py``); the inbox, the queue and the
outbox are built on it where they share its engine. Handlers see only ``Transaction``.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from typing import Any, Iterable, Protocol, Sequence

from ichido.db.migrations import Step


class Transaction(Protocol):
    """What a handler's ``tx`` offers: ``execute`` with ``?`` placeholders on every SQL engine.

    In a worker's batch, the processed marker is already written in this transaction; it
    commits with the handlers' writes or not at all (I2). Another engine (a key-value store)
    may hand handlers its own kind of transaction.
    """

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


class Database(abc.ABC):
    """Connections, transactions and the schema of one store."""

    #: whether ``migrate=None`` means "migrate" (zero set-up, the embedded default) or "check
    #: and ask for ``ichido migrate``" (a shared server, migrated by a deployment step)
    migrates_itself: bool = False

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A write transaction: commits on exit, rolls back on an exception."""

    @abc.abstractmethod
    def reading(self) -> AbstractContextManager[Transaction]:
        """A connection for reads only."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``StorageUnavailable`` when the store cannot be reached."""

    @abc.abstractmethod
    def store_id(self) -> str:
        """A random name this store keeps forever (copies carry it too)."""

    def seen_namespace(self) -> str:
        """The seen tier's namespace: this store, and no copy of it (I3)."""
        return self.store_id()

    @abc.abstractmethod
    def migrate(self, steps: Sequence[Step]) -> None:
        """Apply the steps not applied yet (each once, even with several processes)."""

    @abc.abstractmethod
    def check(self, steps: Sequence[Step]) -> None:
        """Raise ``SchemaError`` when a step is not applied: a schema behind the code."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def prepare(self, steps: Sequence[Step], migrate: bool | None = None) -> None:
        """Migrate (``migrate=True``, or None on an engine that migrates itself), then check."""
        if self.migrates_itself if migrate is None else migrate:
            self.migrate(steps)
        self.check(steps)
