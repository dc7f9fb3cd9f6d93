"""DynamoDB as the store: one table of ichido's own (``dynamodb://TABLE``) beside the app's.

Items, keyed ``pk`` + ``sk``:
- ``(event id, "event")``: the event's state (type, status, attempts, failures; on the
  Streams layout also the body, which the stream's INSERT record carries to the worker);
- ``("counters", shard)``: the counters of one execution environment. Each environment runs
  one invocation at a time, so its counter item is never written by two transactions at once
  (a shared item would make concurrent transactions cancel each other);
- ``("store", "id")``: the store's name (the seen tier's namespace).

The processed marker is the event item, written in the handlers' ``TransactWriteItems``: a
``Put`` conditional on ``attribute_not_exists(pk)`` when no item exists yet, else an ``Update``
conditional on the status as it was read (a stored, failed or requeued event). A consistent
``GetItem`` first answers most duplicates without a transaction (I2, I8: a copy that slips
past it is cancelled by the condition at commit).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from ichido.db.dynamodb import (DynamoDatabase, DynamoTransaction, TransactionCancelled,
                                from_item, to_item)
from ichido.errors import IchidoError, StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.base import EventRecord, Inbox, stats_from
from ichido.queue.base import FINISHED, Status

EVENT = "event"
REQUEUED = "requeued"  # what the Streams worker's filter takes (ichido.queue.streams.REQUEUED)
MAX_FAILURES_KEPT = 10  # the item stays far below DynamoDB's 400 KB


class DynamoInbox(Inbox):
    """The worker's ledger (``applying``, ``record_failure``, ``count``), the Streams layout's
    durable write (``accept``), and the admin reads behind ``ichido events``/``stats``."""

    def __init__(self, database: DynamoDatabase, *, shard: str) -> None:
        self.database = database
        self.table_name = database.table
        self.shard = shard
        self.client = database.client
        self._read_ahead: tuple[str, dict[str, Any] | None] | None = None

    # -- the worker's marker -----------------------------------------------------------------

    def state(self, event_id: str) -> dict[str, Any] | None:
        """The event's item, read consistently; the next ``applying`` of it reuses this read."""
        item = self.database.get(self.table_name, {"pk": event_id, "sk": EVENT})
        self._read_ahead = (event_id, item)
        return item

    @contextmanager
    def applying(self, delivery: Delivery, status: Status, attempt: int,
                 received_at: float) -> Iterator[DynamoTransaction | None]:
        current = self._current(delivery.id)
        if current is not None and current.get("status") in FINISHED:
            self.count({"received": 1, "duplicates_durable": 1})
            yield None
            return
        tx = DynamoTransaction(self.database, reserved=2)
        yield tx
        items = [self._marker(delivery, status, attempt, received_at, current),
                 self._counter_item({"received": 1, "unique": 1}), *tx.items]
        try:
            self.database.commit(items)
        except TransactionCancelled as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                # Another copy committed since our read: now a duplicate, and nothing written.
                self.count({"received": 1, "duplicates_durable": 1})
                return
            raise

    def record_failure(self, delivery: Delivery, attempt: int, error: str, *,
                       dead: bool) -> None:
        """The failure appended to the event's list; when that would take the item past
        DynamoDB's 400 KB (a large body beside many failures), the list restarts with this one:
        the event's state must always be writable, its old errors are in the log."""
        values = {":s": (Status.DEAD if dead else Status.RETRYING).value, ":a": attempt,
                  ":e": error, ":t": delivery.type, ":c": delivery.created, ":r": time.time(),
                  ":f": [{"attempt": attempt, "at": time.time(), "error": error}],
                  ":none": [], ":p": Status.PROCESSED.value, ":i": Status.IGNORED.value}
        update = ("SET #status = :s, attempts = :a, last_error = :e, #type = :t, created = :c,"
                  " received_at = if_not_exists(received_at, :r), failures = ")
        appended = "list_append(if_not_exists(failures, :none), :f)"
        try:
            self._update_state(delivery.id, update + appended, values)
        except ClientError as exc:
            if "maximum allowed size" not in exc.response["Error"].get("Message", ""):
                raise StorageUnavailable(f"could not record a failure: {exc}") from exc
            del values[":none"]
            try:
                self._update_state(delivery.id, update + ":f", values)
            except ClientError as again:
                raise StorageUnavailable(f"could not record a failure: {again}") from again

    def _update_state(self, event_id: str, expression: str, values: dict[str, Any]) -> None:
        """An update of the event's item, unless it is finished; a finished one is left as is."""
        try:
            self.client.update_item(
                TableName=self.table_name, Key=to_item({"pk": event_id, "sk": EVENT}),
                UpdateExpression=expression,
                ConditionExpression="attribute_not_exists(pk) OR NOT #status IN (:p, :i)",
                ExpressionAttributeNames={"#status": "status", "#type": "type"},
                ExpressionAttributeValues=to_item(values))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def count(self, increments: dict[str, int]) -> None:
        item = self._counter_item(increments)["Update"]
        try:
            self.client.update_item(**item)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"could not count: {exc}") from exc

    def _current(self, event_id: str) -> dict[str, Any] | None:
        ahead, self._read_ahead = self._read_ahead, None
        if ahead is not None and ahead[0] == event_id:
            return ahead[1]
        return self.database.get(self.table_name, {"pk": event_id, "sk": EVENT})

    def _marker(self, delivery: Delivery, status: Status, attempt: int, received_at: float,
                current: dict[str, Any] | None) -> dict[str, Any]:
        now = time.time()
        if current is None:
            item = {"pk": delivery.id, "sk": EVENT, "type": delivery.type,
                    "created": delivery.created, "status": status.value, "attempts": attempt,
                    "received_at": received_at, "finished_at": now}
            if delivery.object_id:
                item["object_id"] = delivery.object_id
            return {"Put": {"TableName": self.table_name, "Item": to_item(item),
                            "ConditionExpression": "attribute_not_exists(pk)"}}
        return {"Update": {
            "TableName": self.table_name, "Key": to_item({"pk": delivery.id, "sk": EVENT}),
            "UpdateExpression": "SET #status = :s, attempts = :a, finished_at = :f",
            "ConditionExpression": "#status = :seen",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": to_item({":s": status.value, ":a": attempt, ":f": now,
                                                  ":seen": current.get("status")})}}

    def _counter_item(self, increments: dict[str, int]) -> dict[str, Any]:
        names = {f"#n{i}": name for i, name in enumerate(increments)}
        values = {f":v{i}": value for i, value in enumerate(increments.values())}
        return {"Update": {
            "TableName": self.table_name, "Key": to_item({"pk": "counters", "sk": self.shard}),
            "UpdateExpression": "ADD " + ", ".join(f"#n{i} :v{i}" for i in range(len(names))),
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": to_item(values)}}

    # -- the Streams layout's receiver -------------------------------------------------------

    def accept(self, deliveries: Sequence[Delivery], *, cache_hits: int = 0) -> list[bool]:
        """Conditional puts of the whole event: the durable write and the dedupe in one call.
        A copy finds the item and writes nothing, so it makes no stream record either."""
        accepted = []
        for delivery in deliveries:
            item = {"pk": delivery.id, "sk": EVENT, "type": delivery.type,
                    "created": delivery.created, "status": Status.PENDING.value, "attempts": 0,
                    "received_at": time.time(), "body": delivery.body}
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
            self.count({"received": duplicates + cache_hits, "duplicates_durable": duplicates,
                        "duplicates_cache": cache_hits})
        return accepted

    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        return await asyncio.to_thread(self.accept, deliveries, cache_hits=cache_hits)

    async def aclose(self) -> None:
        return None

    # -- inspecting --------------------------------------------------------------------------

    def get(self, event_id: str) -> EventRecord | None:
        item = self.database.get(self.table_name, {"pk": event_id, "sk": EVENT})
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
        kwargs: dict[str, Any] = {"TableName": self.table_name,
                                  "FilterExpression": "sk = :e",
                                  "ExpressionAttributeValues": to_item({":e": EVENT})}
        if projection:
            kwargs.update(ProjectionExpression="#status", ExpressionAttributeNames={
                "#status": "status"})
        for page in self.client.get_paginator("scan").paginate(**kwargs):
            for item in page["Items"]:
                yield from_item(item)

    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table_name, KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=to_item({":p": pk}), ConsistentRead=True)
        for page in pages:
            for item in page["Items"]:
                yield from_item(item)


def _record(item: dict[str, Any]) -> EventRecord:
    failures = tuple((int(f["attempt"]), float(f["at"]), f["error"])
                     for f in item.get("failures", [])[-MAX_FAILURES_KEPT:])
    return EventRecord(item["pk"], item["type"], int(item["created"]), item.get("object_id"),
                       item["status"], int(item.get("attempts", 0)),
                       float(item.get("received_at", 0)), None, item.get("finished_at"),
                       item.get("last_error"), item.get("body", b""), failures=failures)
