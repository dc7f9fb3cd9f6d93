"""Fixes to moto's SQS and DynamoDB, so the local server (``start_moto``) keeps up however
many messages and items it holds. They change how fast moto answers, never what it answers,
and apply only in the process running the local moto server; ichido on AWS never imports this.

Measured with py-spy on a moto server under ``python -m bench aws-torture`` (moto 5.2):

- 73% of its CPU went to SQS's ``Queue.attributes``, which builds every attribute of the
  queue whenever one is read, the approximate message counts included (three scans of every
  message, each reading the clock through ``datetime``). ``SendMessage`` reads
  ``ContentBasedDeduplication`` that way four times, ``ReceiveMessage`` reads
  ``MessageRetentionPeriod`` three times per message it returns: each cost O(backlog).
  ``Queue.attributes`` becomes a read-only mapping with the same keys that computes a value
  when it is read (afresh each time, as moto does), and SQS reads the clock with
  ``time.time()`` (the same number: seconds since the epoch).
- Once SQS was fast, 75% went to DynamoDB's ``TransactWriteItems``, which deep-copies every
  table it writes to before it starts, to put the copy back if the transaction is cancelled:
  O(table) per transaction, and gigabytes of garbage. Here it saves the items it touches
  instead (and the length of each table's stream), and puts those back when it is cancelled.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

moto_queue_attributes: Any = None  # moto's own ``Queue.attributes``, once replaced
moto_transact_write_items: Any = None  # and DynamoDB's ``transact_write_items``
_transaction = threading.local()  # .active: inside a patched transact_write_items


def apply() -> None:
    """Patch moto's SQS and DynamoDB models in this process (once; later calls do nothing)."""
    global moto_queue_attributes, moto_transact_write_items
    if moto_queue_attributes is not None:
        return
    from moto.core import utils
    from moto.dynamodb import models as dynamodb
    from moto.sqs import models as sqs

    slow_unix_time = utils.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else slow_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    sqs.unix_time = unix_time
    sqs.unix_time_millis = unix_time_millis
    moto_queue_attributes = sqs.Queue.attributes
    setattr(sqs.Queue, "attributes", property(QueueAttributes))
    moto_transact_write_items = dynamodb.DynamoDBBackend.transact_write_items
    # moto's module-level `copy` is swapped for one that leaves its tables uncopied
    dynamodb.copy = CopyKeepingTables()  # type: ignore[assignment]  # see the line above
    setattr(dynamodb.DynamoDBBackend, "transact_write_items", transact_write_items)


class QueueAttributes(Mapping[str, Any]):
    """What moto's ``Queue.attributes`` returns, each value computed when it is read: the same
    keys (its base attributes, the FIFO ones on a FIFO queue, the KMS ones with a KMS key),
    the redrive policy as JSON, booleans as ``"true"`` / ``"false"``."""

    def __init__(self, queue: Any) -> None:
        from moto.core.utils import camelcase_to_underscores

        self._queue = queue
        self._underscored = camelcase_to_underscores
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        if name == "Policy" and queue.policy:
            return queue.policy
        if name == "RedrivePolicy" and queue.redrive_policy:
            return json.dumps(queue.redrive_policy)
        value = getattr(queue, self._underscored(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class CopyKeepingTables:
    """The ``copy`` module as moto's DynamoDB backend sees it, except that inside a patched
    ``transact_write_items`` a table's "copy" for the rollback is the table itself (its
    touched items were saved instead, and putting the "copy" back changes nothing)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_transaction, "active", False) and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's, with its rollback made of the items the transaction touches."""
    saved = saved_items(backend, transact_items)
    _transaction.active = True
    try:
        moto_transact_write_items(backend, transact_items)
    except BaseException:
        restore(saved)
        raise
    finally:
        _transaction.active = False


Saved = tuple[list[tuple[Any, Any, Any, Any]], list[tuple[Any, int]]]


def saved_items(backend: Any, transact_items: list[dict[str, Any]]) -> Saved:
    """Each item the transaction may write, as it is now (None: absent), with its table and
    key; and each table's stream with its length."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    items, streams = [], {}
    for entry in transact_items:
        for kind, operation in entry.items():
            table = backend.tables.get(operation.get("TableName"))
            key = operation.get("Item" if kind == "Put" else "Key")
            if table is None or not isinstance(key, dict):
                continue  # moto refuses it before writing anything
            try:
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = (DynamoType(key[table.range_key_attr])
                               if table.range_key_attr is not None else None)
            except (KeyError, TypeError, AttributeError):
                continue
            if table.range_key_attr is not None:
                current = table.items.get(hash_value, {}).get(range_value)
            else:
                current = table.items.get(hash_value)
            items.append((table, hash_value, range_value, copy.deepcopy(current)))
            if table.stream_shard is not None:
                streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
    return items, list(streams.values())


def restore(saved: Saved) -> None:
    """Put the saved items back (remove those that were absent), drop the stream records
    written since."""
    items, streams = saved
    for table, hash_value, range_value, item in reversed(items):
        home = table.items[hash_value] if range_value is not None else table.items
        key = range_value if range_value is not None else hash_value
        if item is None:
            home.pop(key, None)
        else:
            home[key] = item
    for shard, length in streams:
        del shard.items[length:]
