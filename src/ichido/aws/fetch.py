"""The fetch stage on the Lambda worker: a thin event is completed before its transaction.

The same reads as the core worker's (``ichido.thin.fetch``), one event at a time: the event
(``GET /v2/core/events/{id}``, unless ``event_read_needed`` says the notification is the whole
event) and, for ``v1.`` types, its related object, through the official
SDK at ``ICHIDO_FETCH_RATE`` (``ichido.thin.reader``). What was read is stored before the
ledger's transaction opens, so a retry (SQS's next receive, a Streams retry, a redriven dead
letter) reads the store, not Stripe:

- on PostgreSQL, in ``ichido_fetched``, as the core worker stores it;
- on DynamoDB, in an item of its own in ichido's table, ``("fetched#<event id>", "fetched")``
  (the event's read and its object's, JSON as Stripe answered), apart from the event's items so
  that reading the event's state never reads it.

A thin event whose twin has applied the change already (its change key held by another event)
costs no read: it is finished as ``twin``. A failed read raises ``FetchFailed``: a failed
attempt of the event, recorded and retried as a failed handler is; ``event_expired`` is
dead at once.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from ichido.db.dynamodb import DynamoDatabase, to_item
from ichido.db.sql import SqlDatabase
from ichido.errors import StorageUnavailable
from ichido.event import Delivery, Event
from ichido.thin import fetch as core, twins
from ichido.thin.fetch import Fetched, needs_object, thin_event
from ichido.thin.notification import created_seconds
from ichido.thin.reader import FetchFailed, Reader, event_read_needed

log = logging.getLogger("ichido.aws.worker")
FETCHED = "fetched"  # the sort key of a DynamoDB event's stored read, ``("fetched#<id>", …)``
CLAIMED_BY = "claimed_by"  # on a snapshot's marker item: the thin twin that applied its change


def holder_in(item: dict[str, Any] | None, change: str) -> str | None:
    """Who applied ``change`` (a snapshot's id), from the snapshot's marker item on DynamoDB
    (``ichido.aws.dynamodb_ledger``): the thin twin that claimed it, or the snapshot itself
    once processed; None while neither has."""
    if item is None:
        return None
    if item.get(CLAIMED_BY):
        return str(item[CLAIMED_BY])
    return change if item.get("status") == "processed" else None


class FetchedStore(Protocol):
    """Where a layout keeps what was read, and who holds a change."""

    def holder(self, change: str) -> str | None:
        """The event that applied ``change`` (committed), or None."""

    def load(self, event_id: str) -> Fetched | None:
        """What was read for the event before, or None."""

    def save(self, event_id: str, fetched: Fetched) -> None:
        """Keep what was read, replacing an earlier read."""


class SqlFetched:
    """PostgreSQL's (or SQLite's): the core's ``ichido_fetched`` and ``ichido_changes``."""

    def __init__(self, database: SqlDatabase) -> None:
        self.database = database

    def holder(self, change: str) -> str | None:
        with self.database.reading() as tx:
            return twins.holders_of(tx, [change]).get(change)

    def load(self, event_id: str) -> Fetched | None:
        with self.database.reading() as tx:
            return core.load(tx, [event_id]).get(event_id)

    def save(self, event_id: str, fetched: Fetched) -> None:
        with self.database.storage("store fetched events"), self.database.transaction() as tx:
            core.save(tx, {event_id: fetched})


class DynamoFetched:
    """DynamoDB's: the ``("fetched#<event id>", "fetched")`` item; a change's holder is read
    from the snapshot's marker item, ``(snapshot id, marker_sk)``."""

    def __init__(self, database: DynamoDatabase, marker_sk: str = "event") -> None:
        self.database = database
        self.marker_sk = marker_sk

    def holder(self, change: str) -> str | None:
        return holder_in(self.database.get(self.database.table,
                                           {"pk": change, "sk": self.marker_sk}), change)

    def load(self, event_id: str) -> Fetched | None:
        item = self.database.get(self.database.table, {"pk": f"{FETCHED}#{event_id}",
                                                       "sk": FETCHED})
        if item is None:
            return None
        obj = item.get("object")
        return Fetched(orjson.loads(bytes(item["event"])),
                       orjson.loads(bytes(obj)) if obj is not None else None,
                       bool(item.get("has_object")))

    def save(self, event_id: str, fetched: Fetched) -> None:
        item: dict[str, Any] = {"pk": f"{FETCHED}#{event_id}", "sk": FETCHED,
                                "event": orjson.dumps(fetched.event),
                                "has_object": fetched.has_object}
        if fetched.object is not None:
            item["object"] = orjson.dumps(fetched.object)
        try:
            self.database.client.put_item(TableName=self.database.table,
                                          Item=to_item(item))
        except ClientError as exc:
            if "size" in exc.response["Error"].get("Message", ""):
                # past DynamoDB's 400 KB: not kept, so a retry reads again (nothing is lost)
                log.warning("the read of %s is too large to keep (%s)", event_id, exc)
                return
            raise StorageUnavailable(f"could not store a fetched event: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot reach DynamoDB: {exc}") from exc


class AwsFetch:
    """Completes one thin event for the Lambda worker (``EventApplier``)."""

    def __init__(self, reader: Reader, store: FetchedStore) -> None:
        self.reader = reader
        self.store = store

    def twin_of(self, delivery: Delivery) -> str | None:
        """The event that applied this thin event's change, when one has (no read is due)."""
        key = twins.change_key(delivery.id, delivery.type, delivery.body)
        holder = self.store.holder(key) if key else None
        return holder if holder and holder != delivery.id else None

    def complete(self, delivery: Delivery, attempt: int) -> Event:
        """The handlers' event: what was stored, or read now and stored. An event read whose
        object then failed is stored all the same (the retry reads only the object)."""
        note = orjson.loads(delivery.body)
        related = note.get("related_object")
        want_object = needs_object(delivery.type) and isinstance(related, dict)
        have = self.store.load(delivery.id)
        if have is not None and (have.has_object or not want_object):
            return thin_event(note, have, attempt)
        notification = self.reader.notification(delivery.body)
        fresh = have is None
        if have is None:  # the notification is the whole event unless it has data
            have = Fetched(self.reader.event(notification, created_seconds(note["created"]))
                           if event_read_needed(delivery.type) else {})
        if want_object:
            try:
                have = Fetched(have.event, self.reader.related_object(notification), True)
            except FetchFailed:
                if fresh:
                    self.store.save(delivery.id, have)
                raise
        self.store.save(delivery.id, have)
        return thin_event(note, have, attempt)
