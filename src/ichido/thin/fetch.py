"""The fetch stage: thin events are completed before the handlers' transaction, never in it.

For the thin events of a claimed batch that a handler will see, it reads (``reader.Reader``)
the event (not for a ``v1.`` type without ``data``: ``reader.event_read_needed``) and, for
``v1.`` types, the related object the handlers get as ``event.object``. What
it read is stored (``ichido_fetched``) in a short transaction of its own, before any handler
runs: a retry or a replay reads the store, not Stripe (``ichido replay --refetch`` forgets it
first). Events of one object in the batch share one read of it. A thin event whose twin has
applied its change already (``twins``) costs no read at all.

A failed read is a failed attempt of its event, recorded as a failed handler is: retried with
the worker's backoff (no sooner than Stripe's ``Retry-After``), then dead-lettered with the
reason; an event past Stripe's 30 days (``event_expired``) is dead-lettered at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

import orjson

from ichido.config import Settings
from ichido.db.sql import SqlDatabase
from ichido.errors import IchidoError
from ichido.event import Event
from ichido.handlers import HandlerRegistry
from ichido.queue.base import Claim, Claims, retry_at
from ichido.thin import recovered, twins
from ichido.thin.notification import created_seconds
from ichido.thin.reader import FetchFailed, Reader, event_read_needed

log = logging.getLogger("ichido.worker")
_CHUNK = 200
_KEPT = 1024  # completed events kept in memory for the batch's transaction (and its retries)


@dataclass(frozen=True)
class Fetched:
    """What was read for one thin event: the event, and its related object if it was read."""

    event: dict[str, Any]
    object: dict[str, Any] | None = None
    has_object: bool = False


def needs_object(event_type: str) -> bool:
    """A ``v1.`` event's handlers read the object (``event.object``); a ``v2.`` event carries
    its data in the event itself."""
    return event_type.startswith("v1.")


def thin_event(notification: dict[str, Any], fetched: Fetched, attempt: int,
               api_version: str | None = None) -> Event:
    """The handlers' view of a completed thin event (``Event``, ``shape="thin"``);
    ``api_version``: the version its object was read in."""
    payload = {**notification, **fetched.event}
    event_type = str(notification["type"])
    found = recovered.impact(fetched.event) if recovered.is_alert(event_type) else None
    if found is not None:  # the event Stripe never generated, named by its health alert
        return Event(str(notification["id"]), found.event_type,
                     created_seconds(notification["created"]), payload, attempt,
                     shape="recovery", fetched_object=fetched.object,
                     recovered_from=found.alert_id, fetched_api_version=api_version)
    return Event(str(notification["id"]), event_type.removeprefix("v1."),
                 created_seconds(notification["created"]), payload, attempt, shape="thin",
                 fetched_object=fetched.object, fetched_api_version=api_version)


class FetchStage:
    """Completes the thin events of a batch (``prepare``) and builds every claim's ``Event``."""

    def __init__(self, database: SqlDatabase, queue: Claims, handlers: HandlerRegistry,
                 settings: Settings, reader: Reader) -> None:
        self.database, self.queue, self.handlers = database, queue, handlers
        self.settings, self.reader = settings, reader
        self._ready: dict[str, Fetched] = {}

    def prepare(self, claims: list[Claim]) -> list[Claim]:
        """Fetch what the thin events among ``claims`` need; return the claims to run (those
        whose fetch failed are recorded as failed attempts and left out)."""
        thin = [c for c in claims if c.id not in self._ready
                and (self.handlers.for_type(c.type) or recovered.is_alert(c.type))
                and twins.is_thin(c.type, c.body)]
        if not thin:
            return claims
        notes = {c.id: orjson.loads(c.body) for c in thin}
        with self.database.reading() as tx:
            applied = twins.holders_of(tx, [k for c in thin if (k := _twin(notes[c.id]))])
            stored = self._load(tx, [c.id for c in thin])
        due = [c for c in thin if applied.get(_twin(notes[c.id]) or "", c.id) == c.id]
        failed = self._fetch(due, notes, stored)
        if len(self._ready) > _KEPT:
            self._ready.clear()
        self._ready.update(stored)
        return [c for c in claims if c.id not in failed]

    def event(self, claim: Claim) -> Event:
        """The event the handlers of ``claim`` get: a snapshot as it is stored, a thin event
        with what ``prepare`` fetched."""
        fetched = self._ready.get(claim.id)
        if fetched is None:
            if twins.is_thin(claim.type, claim.body):
                raise RuntimeError(f"thin event {claim.id} reached its handlers unfetched")
            return Event.from_body(claim.body, claim.attempt)
        return thin_event(orjson.loads(claim.body), fetched, claim.attempt,
                          self.reader.api_version())

    def impact(self, claim: Claim) -> recovered.Impact | None:
        """What a prepared health alert says was never generated (None: not an alert, or it
        names no event type)."""
        fetched = self._ready.get(claim.id)
        if fetched is None or not recovered.is_alert(claim.type):
            return None
        return recovered.impact(fetched.event)

    # -- reading ------------------------------------------------------------------------------

    def _fetch(self, due: Sequence[Claim], notes: dict[str, dict[str, Any]],
               stored: dict[str, Fetched]) -> set[str]:
        """Read what ``due`` lacks into ``stored`` (and the store); return the ids that failed.
        An event read whose object then failed is stored all the same (its retry reads only
        the object), and a failed object read fails the batch's other events of that object
        without reading again."""
        failed: set[str] = set()
        fresh: dict[str, Fetched] = {}
        objects: dict[tuple[str, str], dict[str, Any] | None | FetchFailed] = {}
        for claim in due:
            note, have = notes[claim.id], stored.get(claim.id)
            if have is not None and have.has_object:
                continue
            if have is not None and self._object_url(claim, note, have.event) is None:
                continue
            event = have.event if have is not None else None
            try:
                notification = self.reader.notification(claim.body)
                if event is None:  # the notification is the whole event unless it has data
                    event = (self.reader.event(notification, created_seconds(note["created"]))
                             if event_read_needed(claim.type) else {})
                    fresh[claim.id] = Fetched(event)
                url = self._object_url(claim, note, event)
                if url is not None:
                    key = (url, str(note.get("context")))
                    if key not in objects:
                        try:
                            objects[key] = self._object(claim, notification, note, url)
                        except FetchFailed as exc:
                            objects[key] = exc
                    obj = objects[key]
                    if isinstance(obj, FetchFailed):
                        raise obj
                    fresh[claim.id] = Fetched(event, obj, True)
            except FetchFailed as exc:
                self._fail(claim, exc)
                failed.add(claim.id)
                continue
            except Exception as exc:  # a missing API key, a bug: a failed attempt, named
                code = exc.code if isinstance(exc, IchidoError) else "fetch_failed"
                self._fail(claim, FetchFailed(code, f"{type(exc).__name__}: {exc}"))
                failed.add(claim.id)
                continue
            stored[claim.id] = fresh.get(claim.id) or Fetched(event)
        if fresh:
            self._save(fresh)
        return failed

    def _object_url(self, claim: Claim, note: dict[str, Any],
                    event: dict[str, Any]) -> str | None:
        """Where the object the handlers get is read, if they get one: a ``v1.`` event's
        ``related_object.url``; a health alert's ``impact.related_object.url`` when the impact's
        event type has handlers."""
        if recovered.is_alert(claim.type):
            found = recovered.impact(event)
            if found is None or not self.handlers.for_type(found.event_type):
                return None
            return found.object_url
        related = note.get("related_object")
        if needs_object(claim.type) and isinstance(related, dict):
            return str(related.get("url"))
        return None

    def _object(self, claim: Claim, notification: Any, note: dict[str, Any],
                url: str) -> dict[str, Any] | None:
        if recovered.is_alert(claim.type):
            context = note.get("context")
            return self.reader.object_at(url, context if isinstance(context, str) else None,
                                         claim.id)
        return self.reader.related_object(notification)

    def _fail(self, claim: Claim, failed: FetchFailed) -> None:
        s = self.settings
        at = None if failed.final else retry_at(claim.attempt, s.max_attempts,
                                                 s.retry_base_seconds, s.retry_cap_seconds)
        if at is not None and failed.retry_after is not None:
            at = max(at, time.time() + failed.retry_after)
        self.queue.fail(claim, str(failed), at)
        log.warning("event %s (%s): fetch failed on attempt %d: %s", claim.id, claim.type,
                    claim.attempt, failed)

    # -- the store ----------------------------------------------------------------------------

    @staticmethod
    def _load(tx: Any, ids: Sequence[str]) -> dict[str, Fetched]:
        return load(tx, ids)

    def _save(self, fresh: dict[str, Fetched]) -> None:
        with self.database.storage("store fetched events"), self.database.transaction() as tx:
            save(tx, fresh)


def load(tx: Any, ids: Sequence[str]) -> dict[str, Fetched]:
    """What was fetched for ``ids`` and stored (``ichido_fetched``), by event id."""
    found: dict[str, Fetched] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start:start + _CHUNK])
        for event_id, event, obj, has_object in tx.execute(
                "SELECT event_id, event, object, has_object FROM ichido_fetched WHERE"
                f" event_id IN ({', '.join('?' for _ in chunk)})", chunk).fetchall():
            found[event_id] = Fetched(orjson.loads(bytes(event)),
                                      orjson.loads(bytes(obj)) if obj is not None else None,
                                      bool(has_object))
    return found


def save(tx: Any, fresh: dict[str, Fetched]) -> None:
    """Store what was fetched (``ichido_fetched``), in ``tx``, replacing an earlier read."""
    now = time.time()
    for event_id, f in sorted(fresh.items()):
        tx.execute(
            "INSERT INTO ichido_fetched (event_id, event, object, has_object, fetched_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET"
            " event = excluded.event, object = excluded.object,"
            " has_object = excluded.has_object, fetched_at = excluded.fetched_at",
            (event_id, orjson.dumps(f.event),
             None if f.object is None else orjson.dumps(f.object), int(f.has_object), now))


def _twin(note: dict[str, Any]) -> str | None:
    twin = note.get("snapshot_event")
    return twin if isinstance(twin, str) and twin else None


def forget(tx: Any, event_ids: Sequence[str]) -> None:
    """Drop what was fetched for these events (a replay with ``--refetch``), in ``tx``."""
    for start in range(0, len(event_ids), _CHUNK):
        chunk = list(event_ids[start:start + _CHUNK])
        tx.execute(f"DELETE FROM ichido_fetched WHERE event_id IN"
                   f" ({', '.join('?' for _ in chunk)})", chunk)
