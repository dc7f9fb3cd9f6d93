"""The tables of thin events, portable between SQLite and PostgreSQL, migrated with the core.

Append steps; never edit one that has shipped. Imports nothing of ichido, so the storage roles
can list these steps with their own.
"""

from __future__ import annotations

THIN_SCHEMA: list[tuple[str, int, list[str]]] = [
    ("thin", 1, [
        # One row per change applied: a snapshot's id, or the `snapshot_event` a thin v1 event
        # names. Written in the handlers' transaction, so it commits with what they wrote or
        # not at all; its primary key is what lets only one of two twins apply.
        """CREATE TABLE ichido_changes (
            change TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            applied_at DOUBLE PRECISION NOT NULL
        )""",
        # What the fetch stage read for a thin event: the event, and the related object when a
        # handler needs it (`has_object`), so that a retry or a replay reads none of it again.
        """CREATE TABLE ichido_fetched (
            event_id TEXT PRIMARY KEY,
            event BYTEA NOT NULL,
            object BYTEA,
            has_object INTEGER NOT NULL DEFAULT 0,
            fetched_at DOUBLE PRECISION NOT NULL
        )""",
    ]),
]
