"""DynamoDB as the store: one table of ichido's own (``dynamodb://TABLE``) beside the app's.

Items, keyed ``pk`` + ``sk``:
- ``(event id, "event")``: the event's state (type, status, attempts, failures; on the
  Streams layout also the body, zlib-compressed in ``body_zlib``, which the stream's INSERT
  record carries to the worker: write units are billed per KB of the item);
- ``(event id, "applied")``: on the Streams layout, the processed marker, a small item apart
  from the body; its status is the event's (``merged``);
- ``("counters", shard)``: the counters of one execution environment, written outside any
  transaction (the receiver's cache hits, the durable duplicates). ``unique``, and the
  ``received`` of each unique event, are not kept there: they are the finished events,
  counted by ``stats`` from the markers, so they are exact however often a worker retries;
- ``("store", "id")``: the store's name (the seen tier's namespace).

A snapshot's marker item (the event item; on Streams the ``applied`` item) may also carry
``claimed_by``: its thin twin applied the change (``ichido.aws.dynamodb_ledger``). Claimed
before the snapshot came, it is a bare item of keys and claim, which is no event.

The processed marker is written in the handlers' ``TransactWriteItems`` by the Lambda worker's
ledger (``ichido.aws.dynamodb_ledger``, on the same items), conditional on the event not being
finished, so a copy is cancelled at commit (I2, I8).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any, Iterator, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from ichido.db.dynamodb import DynamoDatabase, from_item, to_item
from ichido.errors import IchidoError, StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.base import EventRecord, Inbox, stats_from
from ichido.queue.base import FINISHED, Status

EVENT = "event"
APPLIED = "applied"  # the Streams layout's marker, apart from the item with the body
REQUEUED = "requeued"  # what the Streams worker's filter takes (ichido.queue.streams.REQUEUED)
MAX_FAILURES_KEPT = 10  # the item stays far below DynamoDB's 400 KB


class DynamoInbox(Inbox):
    """The Streams layout's durable write (``accept``), and the operator's reads and dead
    letters behind ``ichido events``/``dlq``/``stats``. The Lambda worker's marker on the same
    items is its ledger (``ichido.aws.dynamodb_ledger``)."""

    def __init__(self, database: DynamoDatabase, *, shard: str) -> None:
        self.database = database
        self.table_name = database.table
        self.shard = shard
        self.client = database.client

    def seen_namespace(self) -> str:
        return self.database.seen_namespace()

    # -- the Streams layout's receiver -------------------------------------------------------

    def accept(self, deliveries: Sequence[Delivery], *, cache_hits: int = 0) -> list[bool]:
        """Conditional puts of the whole event: the durable write and the dedupe in one call.
        A copy finds the item and writes nothing, so it makes no stream record either."""
        accepted = []
        for delivery in deliveries:
            item = {"pk": delivery.id, "sk": EVENT, "type": delivery.type,
                    "created": delivery.created, "status": Status.PENDING.value, "attempts": 0,
                    "received_at": time.time(), "body_zlib": zlib.compress(delivery.body)}
            if delivery.object_id:
                item["object_id"] = delivery.object_id
            try:
                self.client.put_item(TableName=self.table_name, Item=to_item(item),
                                     ConditionExpression="attribute_not_exists(pk)")
                accepted.append(True)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise StorageUnavailable(f"could not store the event: {exc}") from exc
                accepted.append(False)
            except BotoCoreError as exc:
                raise StorageUnavailable(f"cannot reach DynamoDB: {exc}") from exc
        duplicates = accepted.count(False)
        if duplicates or cache_hits:
            add_counts(self.client, self.table_name, self.shard,
                       {"received": duplicates + cache_hits, "duplicates_durable": duplicates,
                        "duplicates_cache": cache_hits})
        return accepted

    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        return await asyncio.to_thread(self.accept, deliveries, cache_hits=cache_hits)

    async def aclose(self) -> None:
        return None

    # -- inspecting --------------------------------------------------------------------------

    def get(self, event_id: str) -> EventRecord | None:
        item = merged(list(self._query(event_id)))
        return None if item is None else _record(item)

    def list(self, *, status: str | None = None, type: str | None = None,
             limit: int = 50) -> list[EventRecord]:
        """A Scan (admin only: it reads the whole table), newest first."""
        records = [_record(item) for item in self._events()
                   if (status is None or item.get("status") == status)
                   and (type is None or item.get("type") == type)]
        return sorted(records, key=lambda r: r.received_at, reverse=True)[:limit]

    def stats(self) -> dict[str, int]:
        counters: dict[str, int] = {}
        for item in self._query("counters"):
            for name, value in item.items():
                if name not in ("pk", "sk"):
                    counters[name] = counters.get(name, 0) + int(value)
        by_status: dict[str, int] = {}
        for item in self._events(projection=True):
            by_status[item["status"]] = by_status.get(item["status"], 0) + 1
        # Each finished event was received once and is unique: its marker is the count. Before
        # this, the worker's transaction added to ``unique`` and ``received`` with each marker,
        # so a ``unique`` kept then is that many markers, counted here already.
        finished = sum(by_status.get(status, 0) for status in FINISHED)
        counters["received"] = counters.get("received", 0) - counters.get("unique", 0) + finished
        counters["unique"] = finished
        return stats_from(counters, by_status)

    def requeue_dead(self, event_ids: Sequence[str] | None = None) -> int:
        """The Streams layout's replay: a dead event's status becomes ``requeued``, a MODIFY
        record its worker takes (on the SQS layout the DLQ is redriven instead)."""
        ids = event_ids if event_ids is not None else [
            record.id for record in self.list(status=Status.DEAD.value, limit=1_000_000)]
        moved = 0
        for event_id in ids:
            try:
                self.client.update_item(
                    TableName=self.table_name, Key=to_item({"pk": event_id, "sk": EVENT}),
                    UpdateExpression="SET #status = :requeued, attempts = :zero, requeued_at = :now",
                    ConditionExpression="#status = :dead",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues=to_item({":requeued": REQUEUED, ":zero": 0,
                                                       ":dead": Status.DEAD.value,
                                                       ":now": time.time()}))
                moved += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise StorageUnavailable(f"could not requeue {event_id}: {exc}") from exc
        return moved

    def prune(self, older_than_seconds: float) -> int:
        raise IchidoError("prune is not offered on DynamoDB: an event's item is small and "
                          "kept (a pruned id redelivered would apply again)",
                          code="not_supported")

    def ping(self) -> None:
        self.database.ping()

    def _events(self, projection: bool = False) -> Iterator[dict[str, Any]]:
        """Each event, its marker merged in (a Scan: the two items may be pages apart)."""
        kwargs: dict[str, Any] = {"TableName": self.table_name,
                                  "FilterExpression": "sk IN (:e, :a)",
                                  "ExpressionAttributeValues": to_item({":e": EVENT,
                                                                        ":a": APPLIED})}
        if projection:
            kwargs.update(ProjectionExpression="pk, sk, #status", ExpressionAttributeNames={
                "#status": "status"})
        by_id: dict[str, list[dict[str, Any]]] = {}
        for page in self.client.get_paginator("scan").paginate(**kwargs):
            for item in page["Items"]:
                plain = from_item(item)
                by_id.setdefault(plain["pk"], []).append(plain)
        for items in by_id.values():
            event = merged(items)
            if event is not None:
                yield event

    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table_name, KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=to_item({":p": pk}), ConsistentRead=True)
        for page in pages:
            for item in page["Items"]:
                yield from_item(item)


def merged(items: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """One event's state from its items: the event item, with the status, attempts and
    finish of its marker apart when there is one (the marker is what committed)."""
    event = next((i for i in items if i.get("sk") == EVENT), None)
    marker = next((i for i in items if i.get("sk") == APPLIED), None)
    if event is None or "status" not in event:
        return None  # not received: at most a thin twin's claim of its change (bare item)
    if marker is None:
        return event
    return {**event, **{k: marker[k] for k in ("status", "attempts", "finished_at",
                                                "last_error") if k in marker}}


def body_of(item: dict[str, Any]) -> bytes:
    """The body an event item holds: compressed (``body_zlib``) or, as written before, not."""
    if "body_zlib" in item:
        return zlib.decompress(item["body_zlib"])
    return item.get("body", b"")


def _record(item: dict[str, Any]) -> EventRecord:
    failures = tuple((int(f["attempt"]), float(f["at"]), f["error"])
                     for f in item.get("failures", [])[-MAX_FAILURES_KEPT:])
    return EventRecord(item["pk"], item["type"], int(item["created"]), item.get("object_id"),
                       item["status"], int(item.get("attempts", 0)),
                       float(item.get("received_at", 0)), None, item.get("finished_at"),
                       item.get("last_error"), body_of(item), failures=failures)


def counter_update(table: str, shard: str, increments: dict[str, int]) -> dict[str, Any]:
    """The ``Update`` that adds ``increments`` to the counters of ``shard`` (one item per
    execution environment, see the module's docstring)."""
    names = {f"#n{i}": name for i, name in enumerate(increments)}
    values = {f":v{i}": value for i, value in enumerate(increments.values())}
    return {"Update": {
        "TableName": table, "Key": to_item({"pk": "counters", "sk": shard}),
        "UpdateExpression": "ADD " + ", ".join(f"#n{i} :v{i}" for i in range(len(names))),
        "ExpressionAttributeNames": names, "ExpressionAttributeValues": to_item(values)}}


def add_counts(client: Any, table: str, shard: str, increments: dict[str, int]) -> None:
    """Add to the counters at once, outside any transaction."""
    try:
        client.update_item(**counter_update(table, shard, increments)["Update"])
    except (BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"could not count: {exc}") from exc
