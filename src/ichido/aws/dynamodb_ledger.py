"""The Lambda worker's marker on DynamoDB, in the handlers' transaction.

The items are the DynamoDB inbox's (``ichido.inbox.dynamodb`` describes them); this is the
worker's side of them: ``applying`` writes the processed marker in the same
``TransactWriteItems`` as the handlers' writes, conditional on the event not being finished,
so a copy is cancelled at commit (I2, I8) whether or not anything was read first.

What a new event pays for (1 WRU per KB of item, doubled in a transaction), and nothing else:
the marker (a small item: 2 WRU) and the handlers' writes. Not in the transaction: the counters
(``unique`` and its ``received`` are the finished markers, counted by ``ichido stats``), and no
read before it, where the transaction's own condition decides. A read comes first only where
a copy is likely: a redelivery (attempt > 1), an event sent long after Stripe created it (a
Stripe retry), or the Streams worker's read of the attempts so far; a copy found there costs
no transaction. On Streams the marker is an item of its own beside the one that carries the
body, so it never rewrites the body (``marker_apart``).

Twins (``ichido.thin.twins``) cost a snapshot event nothing more: its change's key is its own
id, so its own marker is its claim. A thin event with handlers claims its snapshot's change in
its transaction by writing ``claimed_by`` on the snapshot's marker item (the event item, or on
Streams the ``applied`` item; a bare item if the snapshot has not come), on condition that the
snapshot is not processed and no other event claimed it; the snapshot's marker is conditional
on no claim. Whichever commits first applies the change; the other's transaction is cancelled
(its handlers' writes with it) and it is finished as ``twin``, its holder read from the item
that refused it (``ReturnValuesOnConditionCheckFailure``: no extra read), which also tells a
twin from a durable duplicate. A failed attempt commits nothing, so it claims nothing.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from botocore.exceptions import ClientError

from ichido.aws.fetch import CLAIMED_BY, holder_in
from ichido.aws.ledger import TwinApplied, twin_note
from ichido.db.dynamodb import (DynamoDatabase, DynamoTransaction, TransactionCancelled,
                                from_item, to_item)
from ichido.errors import StorageUnavailable
from ichido.event import Delivery
from ichido.inbox.dynamodb import APPLIED, EVENT, add_counts, merged
from ichido.queue.base import FINISHED, Status


#: An event sent to the queue this long after Stripe created it is likely a retry of one
#: already taken: its marker is read first (a copy found costs no transaction).
LATE = 60.0


class DynamoLedger:
    """The ``Ledger`` (and ``StreamsLedger``) on ichido's DynamoDB table. ``marker_apart``:
    the marker is an item of its own (the Streams layout, whose event item carries the body);
    else it is the event item itself (the SQS layout, whose event item has no body)."""

    def __init__(self, database: DynamoDatabase, *, shard: str,
                 marker_apart: bool = False) -> None:
        self.database = database
        self.table_name = database.table
        self.shard = shard
        self.client = database.client
        self.marker_apart = marker_apart
        self._read_ahead: tuple[str, dict[str, Any] | None] | None = None

    def state(self, event_id: str) -> dict[str, Any] | None:
        """The event's state (its item, and its marker's status if apart), read consistently
        in one Query; the next ``applying`` of it reuses this read."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table_name, KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=to_item({":p": event_id}), ConsistentRead=True)
        item = merged([from_item(i) for page in pages for i in page["Items"]])
        self._read_ahead = (event_id, item)
        return item

    @contextmanager
    def applying(self, delivery: Delivery, status: Status, attempt: int, received_at: float,
                 *, change: str | None = None,
                 note: str | None = None) -> Iterator[DynamoTransaction | None]:
        if self._reads_first(delivery, attempt, received_at):
            current = self._current(delivery.id)
            if current is not None and current.get("status") in FINISHED:
                self.count({"received": 1, "duplicates_durable": 1})
                yield None
                return
        # Two of the hundred are ichido's: the marker, and one kept so that the handlers'
        # limit (98) stays the same when a second item of ichido's joins (a twin's claim).
        tx = DynamoTransaction(self.database, reserved=2)
        yield tx
        own = change == delivery.id  # a snapshot: its marker is its claim
        claim = [self._claim(delivery.id, change)] if change and not own else []
        try:
            self.database.commit([self._marker(delivery, status, attempt, received_at, note,
                                               unclaimed=own), *claim, *tx.items])
        except TransactionCancelled as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                held = self._refused(exc, 0, delivery.id) if own else None
                if held is not None and held.get("status") not in FINISHED \
                        and held.get(CLAIMED_BY) not in (None, delivery.id):
                    # not finished, but its thin twin claimed the change since ours began
                    self._finish_twin(delivery, attempt, received_at, str(held[CLAIMED_BY]))
                    return  # a copy finished it meanwhile: counted as a duplicate
                # A copy applied before: a duplicate, and nothing of this one written.
                self.count({"received": 1, "duplicates_durable": 1})
                return
            if claim and len(exc.reasons) > 1 and exc.reasons[1] == "ConditionalCheckFailed":
                held = self._refused(exc, 1, str(change))
                holder = holder_in(held, str(change)) or str(change)
                self._finish_twin(delivery, attempt, received_at, holder)
                return  # a copy finished it meanwhile: counted as a duplicate
            raise

    def _refused(self, exc: TransactionCancelled, index: int,
                 event_id: str) -> dict[str, Any] | None:
        """The marker item whose condition refused the transaction: as DynamoDB returned it,
        else read (an item that did not exist is returned as nothing)."""
        item = exc.items[index] if index < len(exc.items) else None
        return item if item is not None else self.database.get(
            self.table_name, {"pk": event_id, "sk": self.marker_sk})

    @property
    def marker_sk(self) -> str:
        """The sort key of the item an event's marker is written on."""
        return APPLIED if self.marker_apart else EVENT

    def _claim(self, event_id: str, change: str) -> dict[str, Any]:
        """A thin event's claim of its snapshot's change, on the snapshot's marker item: it
        lands unless the snapshot is processed or another event claimed it (this one's claim
        again, a replay, lands); else the whole transaction is cancelled."""
        return {"Update": {
            "TableName": self.table_name, "Key": to_item({"pk": change, "sk": self.marker_sk}),
            "UpdateExpression": "SET #claimed = :me, claimed_at = :now",
            "ConditionExpression": "(attribute_not_exists(#status) OR #status <> :processed)"
                                   " AND (attribute_not_exists(#claimed) OR #claimed = :me)",
            "ExpressionAttributeNames": {"#status": "status", "#claimed": CLAIMED_BY},
            "ExpressionAttributeValues": to_item({":me": event_id, ":now": time.time(),
                                                  ":processed": Status.PROCESSED.value}),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

    def _finish_twin(self, delivery: Delivery, attempt: int, received_at: float,
                     holder: str) -> None:
        """Another event's transaction applied the change since ours began: this one is
        finished as its twin (its marker alone; what the handlers wrote was cancelled)."""
        try:
            self.database.commit([self._marker(delivery, Status.TWIN, attempt, received_at,
                                               twin_note(holder))])
        except TransactionCancelled as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                self.count({"received": 1, "duplicates_durable": 1})
                return
            raise
        raise TwinApplied(delivery.id, holder)

    def _reads_first(self, delivery: Delivery, attempt: int, received_at: float) -> bool:
        ahead = self._read_ahead is not None and self._read_ahead[0] == delivery.id
        return ahead or attempt > 1 or received_at - delivery.created > LATE

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
                ConditionExpression="attribute_not_exists(#status)"
                                    " OR NOT #status IN (:p, :i, :w)",
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
        if self.marker_apart:
            item, self._read_ahead = self.state(event_id), None
            return item
        return self.database.get(self.table_name, {"pk": event_id, "sk": EVENT})

    def _marker(self, delivery: Delivery, status: Status, attempt: int,
                received_at: float, note: str | None = None, *,
                unclaimed: bool = False) -> dict[str, Any]:
        """The marker's write, unless the event is finished. Apart: the small marker item
        (which a twin's claim may have made bare). Else: the event item (created, or updated
        after failed attempts). ``unclaimed``: also unless a twin claimed the event's change
        (a snapshot's; ``_claim``). Refused, it returns what the item held."""
        now = time.time()
        finished = {f":done{i}": done.value for i, done in enumerate(FINISHED)}
        names = {"#status": "status"}
        values: dict[str, Any] = {":s": status.value, ":a": attempt, ":f": now}
        update = "SET #status = :s, attempts = :a, finished_at = :f"
        if not self.marker_apart:
            names["#type"] = "type"
            values.update({":t": delivery.type, ":c": delivery.created, ":r": received_at})
            update += ", #type = :t, created = :c, received_at = if_not_exists(received_at, :r)"
            if delivery.object_id:
                values[":o"] = delivery.object_id
                update += ", object_id = :o"
        if note:
            values[":e"] = note
            update += ", last_error = :e"
        values.update(finished)
        condition = ("(attribute_not_exists(#status) OR NOT #status IN ("
                     + ", ".join(finished) + "))")
        if unclaimed:
            names["#claimed"] = CLAIMED_BY
            values[":me"] = delivery.id
            condition += " AND (attribute_not_exists(#claimed) OR #claimed = :me)"
        return {"Update": {
            "TableName": self.table_name,
            "Key": to_item({"pk": delivery.id, "sk": self.marker_sk}),
            "UpdateExpression": update, "ConditionExpression": condition,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": to_item(values),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
