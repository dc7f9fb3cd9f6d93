"""Thin notifications for the tests: shaped as Stripe sends them (``reference/stripe-thin``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import orjson

# where v1 objects live, by the related object's type (the URL Stripe puts in related_object)
COLLECTIONS = {"payment_intent": "payment_intents", "customer": "customers",
               "subscription": "subscriptions", "charge": "charges", "refund": "refunds",
               "invoice": "invoices"}


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def make_thin(type: str = "v1.payment_intent.succeeded", *, id: str | None = None,
              object_id: str | None = None, created: int = 1_790_848_800,
              snapshot_event: str | None = None, context: str | None = None,
              **extra: Any) -> bytes:
    """A pushed thin notification: ids only. ``object_id`` None: a fresh ``pi_…``."""
    kind = type.removeprefix("v1.").rsplit(".", 1)[0].split(".")[-1]
    object_id = object_id or f"pi_{uuid.uuid4().hex[:24]}"
    doc: dict[str, Any] = {
        "id": id or f"evt_test_65{uuid.uuid4().hex}", "object": "v2.core.event", "type": type,
        "created": rfc3339(created), "livemode": False, "context": context,
        "reason": {"type": "request", "request": {"id": f"req_{uuid.uuid4().hex[:14]}",
                                                  "idempotency_key": str(uuid.uuid4())}},
        "related_object": {"id": object_id, "type": kind,
                           "url": f"/v1/{COLLECTIONS.get(kind, kind + 's')}/{object_id}"},
        **extra}
    if snapshot_event is not None:
        doc["snapshot_event"] = snapshot_event
    return orjson.dumps(doc)
