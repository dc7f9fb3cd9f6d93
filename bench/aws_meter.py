"""The meter of ``python -m bench cost`` and tests/aws/test_cost.py. Count what AWS bills: API calls per client (botocore's before-parameter-build hook) and DynamoDB
request units, estimated as AWS bills them: a write is 1 unit per KB of the item (2 in a
transaction), a consistent read 1 per 4 KB, a failed conditional write bills like a
successful one (a cancelled transaction is counted as the writes it asked for). Item sizes are tracked from what was written (an update bills the whole
item's size, not just the changed attributes)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable

WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def value_size(value: dict[str, Any]) -> int:
    (kind, raw), = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return len(str(raw).lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in raw)
    if kind == "M":
        return 3 + sum(len(k) + value_size(v) + 1 for k, v in raw.items())
    return sum(value_size({kind[0]: v}) for v in raw)  # SS, NS, BS


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


class Meter:
    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.write_units = 0.0
        self.read_units = 0.0
        self.invocations = 0
        self._sizes: dict[tuple, int] = {}
        #: other counts read with the meter (name: a running total), e.g. the Stripe API's reads
        self.sources: dict[str, Callable[[], int]] = {}

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build", self._before)
        return client

    def counted(self, handler):
        """A Lambda handler whose invocations are counted."""
        def invoke(event, context):
            self.invocations += 1
            return handler(event, context)
        return invoke

    def reading(self) -> dict[str, float]:
        return {**{f"{k}": float(v) for k, v in self.calls.items()},
                "write_units": self.write_units, "read_units": self.read_units,
                "invocations": float(self.invocations),
                **{name: float(total()) for name, total in self.sources.items()}}

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        self.calls[f"{service}:{model.name}"] += 1
        if service != "dynamodb":
            return
        if model.name in WRITES:
            self.write_units += self._units(params["TableName"], params, model.name)
        elif model.name == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, body), = entry.items()
                self.write_units += 2 * self._units(body["TableName"], body, kind + "Item")
        elif model.name == "GetItem":
            size = self._sizes.get(_key(params["TableName"], params["Key"]), 1)
            self.read_units += math.ceil(size / 4096) * (1 if params.get("ConsistentRead")
                                                          else 0.5)
        elif model.name == "Query":  # one partition's items, their sizes summed
            pk = params.get("ExpressionAttributeValues", {}).get(":p")
            size = sum(s for key, s in self._sizes.items()
                       if key[0] == params["TableName"] and ("pk", str(pk)) in key[1:])
            self.read_units += math.ceil(max(size, 1) / 4096) * (
                1 if params.get("ConsistentRead") else 0.5)

    def _units(self, table: str, body: dict[str, Any], kind: str) -> int:
        if "Item" in body:  # a put: the new item's size
            key = _key(table, {k: body["Item"][k] for k in ("pk", "sk", "id") if k in body["Item"]})
            size = item_size(body["Item"])
            before = self._sizes.get(key, 0)
            self._sizes[key] = size
            return math.ceil(max(size, before, 1) / 1024)
        key = _key(table, body["Key"])
        written = item_size(body["Key"]) + sum(
            value_size(v) for v in body.get("ExpressionAttributeValues", {}).values())
        size = max(self._sizes.get(key, 0), written)
        if kind == "UpdateItem":
            self._sizes[key] = size
        return math.ceil(max(size, 1) / 1024)


def _key(table: str, key: dict[str, Any]) -> tuple:
    return (table, *sorted((k, str(v)) for k, v in key.items()))


def per_event(before: dict[str, float], after: dict[str, float], events: int) -> dict[str, float]:
    names = set(before) | set(after)
    return {name: round((after.get(name, 0) - before.get(name, 0)) / events, 2)
            for name in sorted(names) if after.get(name, 0) != before.get(name, 0)}
