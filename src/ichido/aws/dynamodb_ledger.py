"""The Lambda worker's marker on DynamoDB: the event's item, in the handlers' transaction.

The items are the DynamoDB inbox's (``ichido.inbox.dynamodb`` describes them); this is the
worker's side of them: ``applying`` writes the processed marker in the same
``TransactWriteItems`` as the handlers' writes, conditional on the item as it was read, so a
copy that slipped past the read is cancelled at commit (I2, I8). An event with handlers also
puts its change's item, ``("change#<key>", "change")`` (``ichido.thin.twins``), in that
transaction, conditional on no other event holding it: its twin's commit cancels it whole.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from botocore.exceptions import ClientError

from ichido.aws.fetch import CHANGE, change_pk
from ichido.aws.ledger import TwinApplied, twin_note
from ichido.db.dynamodb import DynamoDatabase, DynamoTransaction, TransactionCancelled, to_item
from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.dynamodb import EVENT, add_counts, counter_update
from ichido.queue.base import FINISHED, Status


class DynamoLedger:
    """The ``Ledger`` (and ``StreamsLedger``) on ichido's DynamoDB table."""

    def __init__(self, database: DynamoDatabase, *, shard: str) -> None:
        self.database = database
        self.table_name = database.table
        self.shard = shard
        self.client = database.client
        self._read_ahead: tuple[str, dict[str, Any] | None] | None = None

    def state(self, event_id: str) -> dict[str, Any] | None:
        """The event's item, read consistently; the next ``applying`` of it reuses this read."""
        item = self.database.get(self.table_name, {"pk": event_id, "sk": EVENT})
        self._read_ahead = (event_id, item)
        return item

    @contextmanager
    def applying(self, delivery: Delivery, status: Status, attempt: int, received_at: float,
                 *, change: str | None = None,
                 note: str | None = None) -> Iterator[DynamoTransaction | None]:
        current = self._current(delivery.id)
        if current is not None and current.get("status") in FINISHED:
            self.count({"received": 1, "duplicates_durable": 1})
            yield None
            return
        claim = [self._change(delivery.id, change)] if change else []
        tx = DynamoTransaction(self.database, reserved=2 + len(claim))
        yield tx
        counted = counter_update(self.table_name, self.shard, {"received": 1, "unique": 1})
        items = [self._marker(delivery, status, attempt, received_at, current, note), counted,
                 *claim, *tx.items]
        try:
            self.database.commit(items)
        except TransactionCancelled as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                # Another copy committed since our read: now a duplicate, and nothing written.
                self.count({"received": 1, "duplicates_durable": 1})
                return
            if claim and len(exc.reasons) > 2 and exc.reasons[2] == "ConditionalCheckFailed":
                self._finish_twin(delivery, attempt, received_at, current, str(change))
                return  # a copy finished it meanwhile: counted as a duplicate
            raise

    def _change(self, event_id: str, change: str) -> dict[str, Any]:
        """The change's conditional put (``ichido.thin.twins``): it lands when no event holds
        the change, or when this one does (a replay); else the whole transaction is cancelled."""
        return {"Put": {"TableName": self.table_name,
                        "Item": to_item({"pk": change_pk(change), "sk": CHANGE,
                                         "event_id": event_id, "applied_at": time.time()}),
                        "ConditionExpression": "attribute_not_exists(pk) OR event_id = :me",
                        "ExpressionAttributeValues": to_item({":me": event_id})}}

    def _finish_twin(self, delivery: Delivery, attempt: int, received_at: float,
                     current: dict[str, Any] | None, change: str) -> None:
        """Another event's transaction took the change since ours began: this one is finished
        as its twin (its marker and count alone; what the handlers wrote was cancelled)."""
        held = self.database.get(self.table_name, {"pk": change_pk(change), "sk": CHANGE}) or {}
        holder = str(held.get("event_id", change))
        counted = counter_update(self.table_name, self.shard, {"received": 1, "unique": 1})
        try:
            self.database.commit([self._marker(delivery, Status.TWIN, attempt, received_at,
                                               current, twin_note(holder)), counted])
        except TransactionCancelled as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                self.count({"received": 1, "duplicates_durable": 1})
                return
            raise
        raise TwinApplied(delivery.id, holder)

    def record_failure(self, delivery: Delivery, attempt: int, error: str, *,
                       dead: bool) -> None:
        """The failure appended to the event's list; when that would take the item past
        DynamoDB's 400 KB (a large body beside many failures), the list restarts with this one:
        the event's state must always be writable, its old errors are in the log."""
        values = {":s": (Status.DEAD if dead else Status.RETRYING).value, ":a": attempt,
                  ":e": error, ":t": delivery.type, ":c": delivery.created, ":r": time.time(),
                  ":f": [{"attempt": attempt, "at": time.time(), "error": error}],
                  ":none": [], ":p": Status.PROCESSED.value, ":i": Status.IGNORED.value,
                  ":w": Status.TWIN.value}
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
                ConditionExpression="attribute_not_exists(pk) OR NOT #status IN (:p, :i, :w)",
                ExpressionAttributeNames={"#status": "status", "#type": "type"},
                ExpressionAttributeValues=to_item(values))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def count(self, increments: dict[str, int]) -> None:
        add_counts(self.client, self.table_name, self.shard, increments)

    def _current(self, event_id: str) -> dict[str, Any] | None:
        ahead, self._read_ahead = self._read_ahead, None
        if ahead is not None and ahead[0] == event_id:
            return ahead[1]
        return self.database.get(self.table_name, {"pk": event_id, "sk": EVENT})

    def _marker(self, delivery: Delivery, status: Status, attempt: int, received_at: float,
                current: dict[str, Any] | None, note: str | None = None) -> dict[str, Any]:
        now = time.time()
        if current is None:
            item = {"pk": delivery.id, "sk": EVENT, "type": delivery.type,
                    "created": delivery.created, "status": status.value, "attempts": attempt,
                    "received_at": received_at, "finished_at": now}
            if delivery.object_id:
                item["object_id"] = delivery.object_id
            if note:
                item["last_error"] = note
            return {"Put": {"TableName": self.table_name, "Item": to_item(item),
                            "ConditionExpression": "attribute_not_exists(pk)"}}
        values = {":s": status.value, ":a": attempt, ":f": now, ":seen": current.get("status")}
        if note:
            values[":e"] = note
        return {"Update": {
            "TableName": self.table_name, "Key": to_item({"pk": delivery.id, "sk": EVENT}),
            "UpdateExpression": "SET #status = :s, attempts = :a, finished_at = :f"
                                + (", last_error = :e" if note else ""),
            "ConditionExpression": "#status = :seen",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": to_item(values)}}
