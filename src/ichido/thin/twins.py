"""Twins apply once: a snapshot event and the thin event that names it in ``snapshot_event``
are one change (Stripe's rule, docs.stripe.com/webhooks/thin-event-idempotency).

The change's key is the snapshot's id: a snapshot event keys on its own id, a thin event on its
``snapshot_event`` (a thin event without one has no twin and no key). Before the handlers run,
in their transaction, each event with handlers inserts its key into ``ichido_changes``; the one
whose insert lands applies, and the other finds the key held by its twin and is finished as
``twin`` without running a handler. The key commits with what the handlers wrote, or not at all:
a failed attempt leaves the change free for its twin, and never marked done. Nor does an event
that its handlers ignored (a shape or an API version they do not read) or judged stale: it
``release``s the key in the same transaction, so the other shape can still apply the change.

On PostgreSQL two workers inserting one key at once queue on the primary key: the second waits
for the first transaction and inserts only if it rolled back. On SQLite transactions are one at
a time. The keys of a batch go in one statement, sorted, so two batches take them in the same
order and cannot deadlock on them.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import orjson

from ichido.db.base import Transaction
from ichido.thin.notification import OBJECT

_CHUNK = 200  # keys per statement: SQLite caps bound variables per statement


def is_thin(event_type: str, body: bytes) -> bool:
    """Whether a stored event is a thin notification (snapshot types never start with v1. or
    v2., so only those bodies are read)."""
    return event_type.startswith(("v1.", "v2.")) and orjson.loads(body).get("object") == OBJECT


def change_key(event_id: str, event_type: str, body: bytes) -> str | None:
    """The change an event applies: a snapshot's own id, a thin event's ``snapshot_event``;
    None for a thin event that names no snapshot (nothing else can apply its change)."""
    if not event_type.startswith(("v1.", "v2.")):
        return event_id
    doc = orjson.loads(body)
    if doc.get("object") != OBJECT:
        return event_id
    twin = doc.get("snapshot_event")
    return twin if isinstance(twin, str) and twin else None


def hold(tx: Transaction, events: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Take the changes of ``events`` (``(event id, change key)``, in the order they are to
    apply) in ``tx``; return ``{event id: twin id}`` for those whose change another event holds.
    An event holding its own change already (a forced replay) applies again."""
    if not events:
        return {}
    ordered = sorted(events, key=lambda pair: pair[1])  # stable: arrival order within a key
    holders: dict[str, str] = {}
    now = time.time()
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start:start + _CHUNK]
        rows = tx.execute(
            "INSERT INTO ichido_changes (change, event_id, applied_at) VALUES"
            f" {', '.join('(?, ?, ?)' for _ in chunk)} ON CONFLICT (change) DO NOTHING"
            " RETURNING change, event_id",
            [v for event_id, key in chunk for v in (key, event_id, now)]).fetchall()
        holders.update((str(r[0]), str(r[1])) for r in rows)
    missing = sorted({key for _, key in ordered} - holders.keys())
    for start in range(0, len(missing), _CHUNK):
        keys = missing[start:start + _CHUNK]
        rows = tx.execute(f"SELECT change, event_id FROM ichido_changes WHERE change IN"
                          f" ({', '.join('?' for _ in keys)})", keys).fetchall()
        holders.update((str(r[0]), str(r[1])) for r in rows)
    return {event_id: holders[key] for event_id, key in events if holders[key] != event_id}


def release(tx: Transaction, event_id: str, key: str) -> None:
    """Give back ``key`` that ``event_id`` took in ``tx`` without applying its change (its
    handlers ignored it or judged it stale): the twin may still apply it."""
    tx.execute("DELETE FROM ichido_changes WHERE change = ? AND event_id = ?", (key, event_id))


def holders_of(reader: Any, keys: Sequence[str]) -> dict[str, str]:
    """``{change: event id}`` of those of ``keys`` already applied (committed): the fetch stage
    skips a thin event whose twin applied, before it spends a read on it."""
    found: dict[str, str] = {}
    keys = sorted(set(keys))
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        found.update((str(r[0]), str(r[1])) for r in reader.execute(
            f"SELECT change, event_id FROM ichido_changes WHERE change IN"
            f" ({', '.join('?' for _ in chunk)})", chunk).fetchall())
    return found
