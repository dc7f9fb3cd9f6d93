"""SQLite's intake file, and what binds it to the one store it belongs to.

The receiver writes deliveries into an intake beside the store (``inbox/sqlite.py`` says why);
workers settle it into the store. Two files are one thing only if each knows the other, so:

- the intake's name is the store's full file name plus ``-intake`` (as SQLite's own ``-wal``):
  ``x`` and ``x.db`` have different intakes, and a copy of ``ichido.db*`` takes both;
- the intake names its store (``ichido_intake_owner.store`` = the store's ``ichido_store.id``)
  and itself (``intake``); the store names the intake it settles from
  (``ichido_intake_settled.intake``), whose batch numbers its high-water mark counts;
- at start, an intake that names another store is refused (``intake_mismatch``): settling it
  would move another service's events here; one that is new (the store moved, or the intake
  deleted) is bound to this store and the high-water mark starts again for it;
- every batch and every settle checks that both files are still the files that were opened
  (a file deleted or replaced under a running process is written in vain).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid

from ichido.db.sqlite import SqliteDatabase
from ichido.errors import StorageUnavailable

log = logging.getLogger("ichido.inbox")

SUFFIX = "-intake"

# The intake: receiver batches in commit order (AUTOINCREMENT: a number is never reused, even
# after the rows are settled and deleted), each with its counters and its new events.
INTAKE_SCHEMA = [
    ("intake", 1, [
        """CREATE TABLE ichido_intake_batches (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            received INTEGER NOT NULL,
            fresh INTEGER NOT NULL,
            duplicates_cache INTEGER NOT NULL,
            duplicates_durable INTEGER NOT NULL
        )""",
        """CREATE TABLE ichido_intake (
            id TEXT PRIMARY KEY,
            batch INTEGER NOT NULL,
            type TEXT NOT NULL,
            created BIGINT NOT NULL,
            object_id TEXT,
            body BLOB NOT NULL,
            received_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX ichido_intake_batch ON ichido_intake (batch)",
    ]),
    # Whose intake this is, and its own name (written once, by ``bind``).
    ("intake", 2, [
        """CREATE TABLE ichido_intake_owner (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            intake TEXT NOT NULL,
            store TEXT NOT NULL
        )""",
    ]),
]

# In the store: the intake it settles from, so that its high-water mark (``upto``) is never
# compared with another intake's batch numbers. NULL: a store settled before intakes had names.
STORE_STEPS = [
    ("sqlite-intake", 2, ["ALTER TABLE ichido_intake_settled ADD COLUMN intake TEXT"]),
]

PROBE_ID = ""  # no Stripe event has an empty id: the health probe's row, never committed
PROBE_BYTES = 4096


def intake_path(store_path: str) -> str:
    """``ichido.db`` → ``ichido.db-intake``: unique to the store's full name, and taken by the
    same globs as the store's own ``-wal`` and ``-shm``."""
    return store_path + SUFFIX


def legacy_intake_path(store_path: str) -> str:
    """Where versions before the binding kept the intake (``x`` and ``x.db`` shared one)."""
    root, ext = os.path.splitext(store_path)
    return f"{root}.intake{ext or '.db'}"


def adopt_legacy(store_path: str) -> None:
    """Rename an intake left by a version before the binding to its new name, once, before
    anything opens it (an upgrade stops every process first); its rows settle as any others."""
    old, new = legacy_intake_path(store_path), intake_path(store_path)
    if not os.path.exists(old) or os.path.exists(new):
        return
    conn = sqlite3.connect(old, isolation_level=None)
    try:  # fold its WAL into the file, so that the file alone holds every row
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"cannot rename the intake {old} ({exc}): stop every ichido "
                                 "process of an earlier version on this store first") from None
    finally:
        conn.close()
    os.rename(old, new)
    log.warning("renamed the intake %s to %s (intakes are now named after the store's full "
                "file name)", old, new)


class FileIdentity:
    """A file as it was opened (device and inode), to notice it deleted or replaced later."""

    def __init__(self, path: str, role: str) -> None:
        self.path, self.role = path, role
        self.key = self._stat()

    def _stat(self) -> tuple[int, int]:
        info = os.stat(self.path)
        return info.st_dev, info.st_ino

    def check(self) -> None:
        """Raise ``StorageUnavailable`` when the path no longer names the file opened."""
        try:
            key = self._stat()
        except FileNotFoundError:
            directory = os.path.dirname(os.path.abspath(self.path))
            gone = "its directory was deleted" if not os.path.isdir(directory) else "deleted"
            raise StorageUnavailable(
                f"the {self.role} {self.path} was {gone} while ichido ran: what is written now "
                "would be lost; restore it (or restart ichido to start a new one)") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot reach the {self.role} {self.path}: {exc}") from None
        if key != self.key:
            raise StorageUnavailable(
                f"the {self.role} {self.path} was replaced by another file while ichido ran: "
                "restart ichido so that every process uses the same files")


def bind(store: SqliteDatabase, intake: SqliteDatabase) -> str:
    """Bind ``intake`` to ``store`` (naming it, if it is new); return the intake's name.

    Writes only the intake (and the store only when it has no name yet, on its first start):
    a start never waits for a handler holding the store's write lock."""
    store_id = store.store_id()
    conn = intake.conn()
    row = conn.execute("SELECT intake, store FROM ichido_intake_owner").fetchone()
    if row is None:
        with intake.storage("name the intake"), intake.transaction() as tx:
            tx.execute("INSERT INTO ichido_intake_owner (singleton, intake, store)"
                       " VALUES (1, ?, ?) ON CONFLICT (singleton) DO NOTHING",
                       (uuid.uuid4().hex, store_id))
        row = conn.execute("SELECT intake, store FROM ichido_intake_owner").fetchone()
    intake_id, owner = row
    if owner != store_id:
        raise mismatch(intake.path, store.path)
    upto, marked = store.conn().execute(
        "SELECT upto, intake FROM ichido_intake_settled").fetchone()
    issued = conn.execute("SELECT max(seq) FROM sqlite_sequence"
                          " WHERE name = 'ichido_intake_batches'").fetchone()[0] or 0
    if marked == intake_id and issued < upto:  # put back from before the store's mark: never
        with intake.storage("number the intake"), intake.transaction() as tx:  # reuse numbers
            tx.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'ichido_intake_batches'"
                       " AND seq < ?", (upto, upto))
            tx.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'ichido_intake_batches',"
                       " ? WHERE ? > 0 AND NOT EXISTS (SELECT 1 FROM sqlite_sequence"
                       " WHERE name = 'ichido_intake_batches')", (upto, upto))
    return str(intake_id)


def mismatch(intake_path: str, store_path: str) -> StorageUnavailable:
    return StorageUnavailable(
        f"the intake {intake_path} belongs to another store, not to {store_path}: put that "
        "store's own intake beside it, or move this intake away (it may hold deliveries of the "
        "store it belongs to) and start again", code="intake_mismatch")
