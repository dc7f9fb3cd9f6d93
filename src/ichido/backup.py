"""``ichido backup`` and ``ichido restore``: a SQLite store and its intake, copied as one.

Both files are copied with SQLite's online backup API, which reads a consistent snapshot of a
file while ichido goes on writing it. The intake is copied first, then the store: a settle
moves rows from the intake into the store and only then deletes them, so every delivery
acknowledged before the backup began is in one copy or the other (a row in both settles once).

A copy is given new names (the store's and its intake's) at once: a backup put back in place,
or started elsewhere as a clone, is never taken for the store it was copied from, so a seen tier
shared with that store cannot answer for ids the copy never stored (I3). ``restore`` renames
again, so that one backup restored twice is two stores, and sets the files it replaces aside
(``…-replaced-<time>``), never deleting them. PostgreSQL has its own tools (``pg_dump``).
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Optional

import typer

from ichido.admin_cli import DatabaseOpt
from ichido.config import Settings
from ichido.console import out
from ichido.db.sqlite import path_from_url
from ichido.errors import ConfigError, IchidoError, StorageUnavailable
from ichido.inbox.intake import intake_path, mismatch


def store_path(settings: Settings) -> str:
    if not settings.database_url.startswith("sqlite:"):
        raise ConfigError("backup and restore copy a SQLite store; use PostgreSQL's own tools "
                          "(pg_dump, pg_basebackup) for PostgreSQL", code="not_supported")
    return path_from_url(settings.database_url)


def backup(settings: Settings, target: str) -> list[str]:
    """Copy the store and its intake to ``target`` and ``target``-intake; return the paths."""
    source = store_path(settings)
    if not os.path.exists(source):
        raise StorageUnavailable(f"there is no store at {source} to back up")
    pairs = [(intake_path(source), intake_path(target)), (source, target)]  # intake first
    for _, copy in pairs:
        if os.path.exists(copy):
            raise ConfigError(f"{copy} exists already: back up to a new name")
    if not os.path.isdir(os.path.dirname(os.path.abspath(target))):
        raise ConfigError(f"the directory of {target} does not exist",
                          code="store_directory_missing")
    written = [copy for original, copy in pairs if _copy(original, copy)]
    rename(target)
    return written


def restore(settings: Settings, source: str) -> list[str]:
    """Put the backup ``source`` (and its intake) in place of the store; return the paths the
    replaced files were set aside to. Every ichido process on the store must be stopped."""
    target = store_path(settings)
    if not os.path.exists(source):
        raise ConfigError(f"there is no backup at {source}", code="not_found")
    _check_pair(source)
    set_aside = []
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for path in (target, intake_path(target)):  # the store, then its intake
        if os.path.exists(path):
            _quiesce(path)
            aside = f"{path}-replaced-{stamp}"
            os.rename(path, aside)
            set_aside.append(aside)
    for original, copy in ((source, target), (intake_path(source), intake_path(target))):
        _copy(original, copy)
    rename(target)
    return set_aside


def rename(path: str) -> None:
    """Give the store at ``path`` and its intake new names, bound to each other."""
    store_id, intake_id = uuid.uuid4().hex, uuid.uuid4().hex
    intake = intake_path(path)
    old_intake = None
    if os.path.exists(intake):
        with _connection(intake) as conn:
            row = conn.execute("SELECT intake FROM ichido_intake_owner").fetchone()
            old_intake = None if row is None else row[0]
            conn.execute("UPDATE ichido_intake_owner SET intake = ?, store = ?",
                         (intake_id, store_id))
    with _connection(path) as conn:
        conn.execute("UPDATE ichido_store SET id = ?", (store_id,))
        if old_intake is not None:
            conn.execute("UPDATE ichido_intake_settled SET intake = ? WHERE intake = ?",
                         (intake_id, old_intake))


def _copy(source: str, target: str) -> bool:
    """One file, by the online backup API, as a single file (no WAL beside it)."""
    if not os.path.exists(source):
        return False
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    return True


def _check_pair(source: str) -> None:
    """A backup's intake must name the backup's store (else it is some other store's)."""
    intake = intake_path(source)
    if not os.path.exists(intake):
        return
    with _connection(source) as store, _connection(intake) as conn:
        store_id = store.execute("SELECT id FROM ichido_store").fetchone()
        owner = conn.execute("SELECT store FROM ichido_intake_owner").fetchone()
    if store_id is None or owner is None or owner[0] != store_id[0]:
        raise mismatch(intake, source)


def _quiesce(path: str) -> None:
    """Fold the WAL into the file; this needs the file to itself, so it also tells whether an
    ichido process still has it open."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 2000")
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"{path} is in use ({exc}): stop every ichido process on "
                                 "this store, then restore") from None
    finally:
        conn.close()
    if mode != "delete":
        raise StorageUnavailable(f"{path} is in use: stop every ichido process on this store, "
                                 "then restore")


class _connection:
    """A connection that commits what it did, and is closed, on leaving."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, *rest: object) -> None:
        try:
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.conn.close()


# -- the commands --------------------------------------------------------------------------


def _settings(database_url: Optional[str]) -> Settings:
    return Settings.from_env().with_(database_url=database_url)  # ``with_`` skips a None


def backup_command(
    target: Path = typer.Argument(..., help="The copy's file name (its intake goes beside it)."),
    database_url: Optional[str] = DatabaseOpt,
) -> None:
    """Copy the SQLite store and its intake consistently, while ichido runs."""
    written = backup(_settings(database_url), str(target))
    out.print(f"backed up to {', '.join(written)}", highlight=False, soft_wrap=True)


def restore_command(
    source: Path = typer.Argument(..., help="A copy made by `ichido backup`."),
    database_url: Optional[str] = DatabaseOpt,
) -> None:
    """Put a backup in place of the SQLite store (stop ichido first); replaced files are kept."""
    try:
        aside = restore(_settings(database_url), str(source))
    except sqlite3.Error as exc:
        raise IchidoError(f"cannot restore {source}: {exc}", code="storage_unavailable") from None
    out.print(f"restored {source}" + (f"; the replaced files are {', '.join(aside)}"
                                      if aside else ""), highlight=False, soft_wrap=True)
