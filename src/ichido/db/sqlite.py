"""The embedded default: a SQLite file in WAL mode, one connection per thread.

Writers take the lock up front (``BEGIN IMMEDIATE``) so that two writers queue on
``busy_timeout`` instead of failing on a lock upgrade. SQLite has one writer at a time, so
handlers of several workers run one after another here, which also serializes the events of one
object for free; that is the price of zero set-up, and why PostgreSQL exists.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Iterator
from urllib.parse import urlparse

from ichido.db.base import Transaction
from ichido.db.sql import SqlDatabase
from ichido.errors import ConfigError, StorageUnavailable


def path_from_url(url: str) -> str:
    """``sqlite:///ichido.db`` → ``ichido.db``; ``sqlite:////var/x.db`` → ``/var/x.db``."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite" or not parsed.path or parsed.path == "/":
        raise ConfigError(f"not a SQLite URL: {url!r} (sqlite:///relative.db, sqlite:////abs.db)")
    path = parsed.path[1:]
    if path == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot be shared by receiver and workers")
    return path


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is another connection holding the lock (busy or locked), not a fault.
    Errors Python raises itself (a closed connection) carry no SQLite code: a fault."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqliteDatabase(SqlDatabase):
    engine = "sqlite"
    engine_errors = (sqlite3.Error,)
    schema_errors = (sqlite3.Error,)
    migrates_itself = True

    def __init__(self, path: str, *, synchronous: str = "NORMAL",
                 busy_timeout: float = 10.0) -> None:
        super().__init__()
        self.path = path
        self.synchronous = synchronous
        self.pragmas = (f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}",
                        "PRAGMA journal_mode = WAL", f"PRAGMA synchronous = {synchronous}",
                        # RETURNING collects its rows in a temporary table first: a claim's
                        # bodies went through a file in the temporary directory
                        "PRAGMA temp_store = MEMORY")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):  # a typo, or a volume not mounted: never a new store
            raise StorageUnavailable(
                f"the directory of the SQLite store {path} does not exist: create it, or fix "
                "ICHIDO_DATABASE_URL", code="store_directory_missing")
        try:
            self.conn()
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "SqliteDatabase":
        return cls(path_from_url(url), **options)

    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect(*self.pragmas)
        return conn

    def connect(self, *pragmas: str) -> sqlite3.Connection:
        """A new connection, closed with the database (for a caller that needs its own)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in pragmas:
            conn.execute(pragma)
        with self._lock:
            self._all.append(conn)
        return conn

    def transaction(self) -> AbstractContextManager[Transaction]:
        return self.transaction_on(self.conn())

    @contextmanager
    def transaction_on(self, conn: sqlite3.Connection) -> Iterator[Transaction]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT (busy) leaves the transaction open
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        yield self.conn()

    def location(self) -> object:
        """The file's real path and identity: a copy elsewhere, or one put in its place, is
        another store for the seen tier (which then starts cold: a hint, I3)."""
        info = os.stat(self.path)
        return os.path.realpath(self.path), info.st_dev, info.st_ino

    def dialect(self) -> "SqliteDialect":
        return SqliteDialect(self.conn())

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class SqliteDialect:
    """What the migration runner needs from SQLite."""

    name = "SQLite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def current_version(self, component: str) -> int:
        self.conn.execute("CREATE TABLE IF NOT EXISTS ichido_schema (component TEXT NOT NULL,"
                          " version INTEGER NOT NULL, applied_at DOUBLE PRECISION NOT NULL,"
                          " PRIMARY KEY (component, version))")
        row = self.conn.execute("SELECT max(version) FROM ichido_schema WHERE component = ?",
                                (component,)).fetchone()
        return row[0] or 0

    def apply(self, component: str, version: int, statements: list[str]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if self.current_version(component) < version:  # another process may be first
                for statement in statements:
                    self.conn.execute(statement)
                self.conn.execute("INSERT INTO ichido_schema (component, version, applied_at)"
                                  " VALUES (?, ?, ?)", (component, version, time.time()))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
