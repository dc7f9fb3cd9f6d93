"""DynamoDB Streams as the queue: the receiver's conditional put of a new event is both the
durable write and the enqueue; the stream's INSERT record carries it to the worker.

Why the put is conditional: DynamoDB writes no stream record for a PutItem that changes
nothing, so a byte-identical repeat would be silent even unconditionally. But Stripe's copies
of one event are not byte-identical (``pending_webhooks`` counts the endpoints still waiting
and changes between attempts), and an unconditional put of such a copy is a MODIFY record,
and work again. Conditional on ``attribute_not_exists(pk)``, a copy writes nothing at all.

The worker takes INSERT records of event items, and MODIFY records whose new status is
``requeued`` (``ichido dlq retry``); everything else ichido writes to the table (markers,
failures, counters) is filtered out, on Lambda by the mapping's FilterCriteria (not billed).
Failed records are retried in shard order by Lambda; the worker itself marks an event dead
after ``max_attempts`` so that one bad event does not hold its shard (I5, docs/invariants.md).
"""

from __future__ import annotations

import json
from typing import Any

import boto3

REQUEUED = "requeued"

# The event source mapping's FilterCriteria (deploy/template.yaml has the same two patterns).
FILTER_PATTERNS = [
    {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": ["event"]}}}},
    {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"sk": {"S": ["event"]},
                                                        "status": {"S": [REQUEUED]}}}},
]


def wanted(record: dict[str, Any]) -> bool:
    """What the FilterCriteria let through, for the local runner."""
    image = record.get("dynamodb", {}).get("NewImage", {})
    if image.get("sk", {}).get("S") != "event":
        return False
    if record.get("eventName") == "INSERT":
        return True
    return record.get("eventName") == "MODIFY" and image.get("status", {}).get("S") == REQUEUED


def filter_criteria_json() -> list[str]:
    return [json.dumps(pattern) for pattern in FILTER_PATTERNS]


class StreamsQueue:
    """The table's stream, for the local runner and the operator (the stream's ARN)."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self.client = client or boto3.client("dynamodb")

    def stream_arn(self) -> str:
        return self.client.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
