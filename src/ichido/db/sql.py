"""What the SQL databases share: the store's name, health, and engine errors as ours.

The inbox, the table queue and the outbox run their ``?`` SQL through these methods, so they
work on any engine here without importing one.
"""

from __future__ import annotations

import abc
import hashlib
import uuid
from contextlib import AbstractContextManager, contextmanager
from typing import Iterator, Sequence

from ichido.db import migrations
from ichido.db.base import Database, Transaction
from ichido.errors import StorageUnavailable

# The store's own name, so a seen tier shared by several stores keeps them apart. Created with
# the core schema on a store that has the inbox (step core v2); here for one that does not.
STORE_TABLE = ("CREATE TABLE IF NOT EXISTS ichido_store (singleton INTEGER PRIMARY KEY"
               " CHECK (singleton = 1), id TEXT NOT NULL)")


class SqlDatabase(Database):
    #: "sqlite" or "postgresql": the few statements that differ are chosen by it
    engine: str = ""
    #: the engine's exception base, turned into ``StorageUnavailable`` where a caller must answer
    engine_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self._store_id: str | None = None

    def statement(self) -> AbstractContextManager[Transaction]:
        """Where one statement runs alone (atomic by itself): engines that can skip BEGIN and
        COMMIT, and their round trips, say so here."""
        return self.transaction()

    def batch(self, size: int) -> AbstractContextManager[Transaction]:
        """The transaction a worker's batch of ``size`` events runs in."""
        return self.transaction()

    def lock_objects(self, tx: Transaction, object_ids: list[str]) -> None:
        """Serialize the events of these Stripe objects across workers, taking the locks in
        sorted order so two batches never deadlock on them (engines with row-level concurrency
        need it; SQLite has one writer and needs nothing)."""

    @abc.abstractmethod
    def dialect(self) -> migrations.Dialect: ...

    def migrate(self, steps: Sequence[migrations.Step]) -> None:
        dialect = self.dialect()
        with self._schema(dialect):
            migrations.apply(dialect, steps, errors=self.schema_errors)

    def check(self, steps: Sequence[migrations.Step]) -> None:
        dialect = self.dialect()
        with self._schema(dialect):
            migrations.check(dialect, steps)

    #: what a wrong schema step raises (as opposed to an unreachable server)
    schema_errors: tuple[type[Exception], ...] = ()

    @contextmanager
    def _schema(self, dialect: migrations.Dialect) -> Iterator[None]:
        """Engine errors outside a step (reading the applied versions) as one clear error."""
        try:
            yield
        except self.engine_errors as exc:
            raise migrations.failed(dialect.name, exc) from exc

    def store_id(self) -> str:
        """Read first: a store named already is never written at start (a handler may hold its
        write lock for as long as it runs, and a restart must not wait for it)."""
        if self._store_id is None:
            self._store_id = self._read_store_id()
        if self._store_id is None:
            with self.storage("name the store"), self.transaction() as tx:
                tx.execute(STORE_TABLE)
                tx.execute("INSERT INTO ichido_store (singleton, id) VALUES (1, ?)"
                           " ON CONFLICT (singleton) DO NOTHING", (uuid.uuid4().hex,))
                self._store_id = tx.execute("SELECT id FROM ichido_store").fetchone()[0]
        return self._store_id

    def _read_store_id(self) -> str | None:
        try:
            with self.reading() as tx:
                row = tx.execute("SELECT id FROM ichido_store").fetchone()
        except self.engine_errors:  # no such table yet: a store without the inbox's schema
            return None
        return None if row is None else str(row[0])

    def seen_namespace(self) -> str:
        """The store's name plus where it lives (``location``): a copy carries the name, so
        the name alone would let a clone's seen tier answer for ids the clone never stored."""
        where = hashlib.sha256(repr(self.location()).encode()).hexdigest()[:16]
        return f"{self.store_id()}.{where}"

    def location(self) -> object:
        """What differs between two copies of one store (each engine says what)."""
        return ()

    def ping(self) -> None:
        with self.storage("read"), self.reading() as tx:
            tx.execute("SELECT 1").fetchall()

    @contextmanager
    def storage(self, action: str) -> Iterator[None]:
        """Turn the engine's own errors into ``StorageUnavailable`` for callers that must
        answer (503) or back off, without knowing which engine is behind."""
        try:
            yield
        except self.engine_errors as exc:
            raise StorageUnavailable(f"could not {action}: {exc}") from exc
