"""Bodies larger than a layout's durable write holds: the body out of line in S3, a pointer in
line, so that every event up to ``ICHIDO_MAX_BODY`` is storable on every layout.

What each layout holds in line (``docs/aws.md``):

- SQS: a message up to the queue's ``MaximumMessageSize`` (1 KiB to 1 MiB; read at start);
- Streams: the event's item, which DynamoDB caps at 400 KB with the event's state and its
  failures beside the body: bodies up to ``STREAMS_INLINE_MAX`` go in line.

A verified body above that is put in the bucket ``ICHIDO_BODY_BUCKET`` under its event id, and
the queue or the item gets the pointer (the event's id, type, created and object, and where its
body is). The object is written before the pointer, so before the 2xx (I1): a crash between the
two leaves an object that no pointer names yet, which the next copy of the event overwrites
(same key), never a pointer without its body. Events at or below the ceiling never touch S3.

The worker resolves a pointer before it applies the event, and reads only its own bucket.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from ichido.group_commit import DurableWrite
from ichido.errors import ConfigError, IchidoError, RejectedDelivery, StorageUnavailable
from ichido.event import Delivery, parse_delivery
from ichido.inbox.base import EventRecord

# DynamoDB's item limit is 400 KB, names and values; the rest of an event item (its state, and
# failures of at most 8 KiB each, whose list restarts before it would overflow) has the remainder.
STREAMS_INLINE_MAX = 256 * 1024
POINTER = b'{"ichido_body":'  # how a pointer begins; a Stripe event never does
KEY_PREFIX = "events/"


class BodyUnavailable(IchidoError):
    """A pointer whose body cannot be read (wrong bucket, missing object, another event)."""

    code = "body_unavailable"


def is_pointer(body: bytes) -> bool:
    return body.startswith(POINTER)


def pointer_delivery(body: bytes) -> Delivery:
    """The delivery a pointer stands for, its body still the pointer. ``RejectedDelivery``
    for a message that only begins like one."""
    try:
        doc = orjson.loads(body)
        where = doc["ichido_body"]
        if not (isinstance(where, dict) and isinstance(where.get("key"), str)
                and isinstance(doc["id"], str) and isinstance(doc["type"], str)):
            raise TypeError
        return Delivery(doc["id"], doc["type"], int(doc["created"]), doc.get("object_id"), body)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise RejectedDelivery("not a Stripe event, nor the pointer to one",
                               code="not_an_event") from None


@dataclass
class Bodies:
    """Where a layout's large bodies go: ``bucket`` (None: nowhere) and ``inline_max``, the
    largest body the layout's durable write holds itself."""

    layout: str
    inline_max: int
    bucket: str | None = None
    client: Any = None

    def __post_init__(self) -> None:
        if self.bucket and self.client is None:  # once, here: boto3 builds clients unsafely
            import boto3                           # from several threads at once

            self.client = boto3.client("s3")

    def check(self, max_body: int) -> None:
        """At start: every body the door lets in (``ICHIDO_MAX_BODY``) must be storable."""
        if max_body > self.inline_max and not self.bucket:
            raise ConfigError(
                f"ICHIDO_MAX_BODY ({max_body} bytes) is more than the {self.layout} layout "
                f"holds in line ({self.inline_max} bytes): set ICHIDO_BODY_BUCKET to an S3 "
                f"bucket for the larger bodies, or lower ICHIDO_MAX_BODY")

    def out_of_line(self, delivery: Delivery) -> Delivery:
        """The delivery itself if it fits in line; else its body put in S3, and its pointer."""
        if len(delivery.body) <= self.inline_max:
            return delivery
        if not self.bucket:  # check() refused this at start; never a silent loss
            raise StorageUnavailable("the body is too large for the layout and no "
                                     "ICHIDO_BODY_BUCKET is set")
        key = KEY_PREFIX + quote(delivery.id, safe="")
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=delivery.body,
                                  ContentType="application/json")
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"could not put the body in S3: {exc}") from exc
        pointer = orjson.dumps({"ichido_body": {"bucket": self.bucket, "key": key,
                                                "bytes": len(delivery.body)},
                                "id": delivery.id, "type": delivery.type,
                                "created": delivery.created, "object_id": delivery.object_id})
        return delivery._replace(body=pointer)

    def resolve(self, delivery: Delivery) -> Delivery:
        """The delivery with its body, read from S3 when it is a pointer."""
        if not is_pointer(delivery.body):
            return delivery
        where = orjson.loads(delivery.body)["ichido_body"]
        if not self.bucket:
            raise BodyUnavailable(f"the body of {delivery.id} is out of line in S3 and "
                                  "ICHIDO_BODY_BUCKET is not set")
        if where.get("bucket") != self.bucket:
            raise BodyUnavailable(f"the body of {delivery.id} is in bucket "
                                  f"{where.get('bucket')!r}, not in ICHIDO_BODY_BUCKET "
                                  f"({self.bucket!r})")
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=where["key"])["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise BodyUnavailable(f"the body of {delivery.id} is not in S3 "
                                      f"({where['key']})") from None
            raise StorageUnavailable(f"could not read the body from S3: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"could not read the body from S3: {exc}") from exc
        stored = parse_delivery(body)
        if stored.id != delivery.id:
            raise BodyUnavailable(f"the object for {delivery.id} holds {stored.id}")
        return stored


class OutOfLine:
    """The receiver's durable write, with bodies above the layout's ceiling put in S3 first.
    The store (the queue, or the Streams layout's conditional put) gets only pointers for them."""

    def __init__(self, store: DurableWrite, bodies: Bodies) -> None:
        self.store = store
        self.bodies = bodies

    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        if any(len(d.body) > self.bodies.inline_max for d in deliveries):
            deliveries = await asyncio.to_thread(
                lambda: [self.bodies.out_of_line(d) for d in deliveries])
        return await self.store.accept_async(deliveries, cache_hits=cache_hits)

    def durable_among(self, event_ids: Sequence[str]) -> set[str] | None:
        return self.store.durable_among(event_ids)

    async def aclose(self) -> None:
        await self.store.aclose()


def with_bodies(store: DurableWrite, bodies: Bodies, max_body: int) -> DurableWrite:
    """The receiver's store as the layout needs it: checked against ``max_body`` (a
    ``ConfigError`` at start), and wrapped when a bucket takes what does not fit in line."""
    bodies.check(max_body)
    return OutOfLine(store, bodies) if bodies.bucket and max_body > bodies.inline_max else store


def resolved_record(record: EventRecord | None, bodies: Bodies | None) -> EventRecord | None:
    """An inbox record with its body read from S3 when the store kept a pointer (for
    ``ichido events show``); the pointer itself when it cannot be read."""
    if record is None or bodies is None or not is_pointer(record.body):
        return record
    try:
        return dataclasses.replace(record, body=bodies.resolve(
            pointer_delivery(record.body)).body)
    except IchidoError:
        return record
