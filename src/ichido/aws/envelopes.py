"""What arrives in a Lambda invocation, turned into the ``Delivery`` the store keeps.

Three shapes: an SQS record whose body is the webhook body the receiver verified (or its pointer,
when the body is out of line in S3: ``ichido.aws.bodies``); an SQS record
whose body is an Amazon EventBridge envelope (Stripe's event in ``detail``; no signature, IAM
vouches for the sender); and a DynamoDB Streams record of the inbox table (the stored item in
``NewImage``, binary attributes base64-encoded as Lambda delivers them).
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson

from ichido.aws.bodies import is_pointer, pointer_delivery
from ichido.errors import RejectedDelivery
from ichido.event import Delivery, parse_delivery

# EventBridge partner sources of Stripe are named aws.partner/stripe.com/<account>/<destination>.
STRIPE_PARTNER_SOURCE = "aws.partner/stripe.com"


def from_sqs_record(record: dict[str, Any]) -> Delivery:
    """Raises ``RejectedDelivery`` for a body that is no Stripe event (it can never succeed)."""
    body = record["body"].encode("utf-8")
    if is_pointer(body):  # a body too large for the queue, out of line in S3
        return pointer_delivery(body)
    if b'"detail-type"' in body:
        envelope = _json(body)
        if is_eventbridge(envelope):
            return from_eventbridge(envelope)
    return parse_delivery(body)


def is_eventbridge(doc: Any) -> bool:
    return (isinstance(doc, dict) and isinstance(doc.get("detail"), dict)
            and "detail-type" in doc and str(doc.get("source", "")).startswith(
                STRIPE_PARTNER_SOURCE))


def from_eventbridge(envelope: dict[str, Any]) -> Delivery:
    """Stripe's event is ``detail``; it is re-encoded, so its bytes are ours, not Stripe's
    (nothing verifies them: the dedupe is on the event id, never on the bytes)."""
    return parse_delivery(orjson.dumps(envelope["detail"]))


def from_stream_record(record: dict[str, Any]) -> Delivery:
    image = record["dynamodb"]["NewImage"]
    return Delivery(image["pk"]["S"], image["type"]["S"], int(image["created"]["N"]),
                    image["object_id"]["S"] if "object_id" in image else None,
                    _body(image))


def _body(image: dict[str, Any]) -> bytes:
    """The event item's body: compressed by the receiver (``ichido.inbox.dynamodb``), or not
    (an item written before)."""
    if "body_zlib" in image:
        return zlib.decompress(base64.b64decode(image["body_zlib"]["B"]))
    return base64.b64decode(image["body"]["B"])


def receive_count(record: dict[str, Any]) -> int:
    return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RejectedDelivery(f"body is not valid JSON: {exc}", code="malformed_json") from None
