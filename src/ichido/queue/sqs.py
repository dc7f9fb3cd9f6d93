"""SQS as the queue: the receiver sends, Lambda's event-source mapping (or the local runner)
claims and deletes, SQS's redrive policy dead-letters after ``maxReceiveCount``.

The message body is the Stripe event exactly as verified (JSON is UTF-8 text, which SQS
carries unchanged). On a FIFO queue the group is the Stripe object's id, so one object's
events are delivered one at a time and in order, and the deduplication id is the event id.
FIFO's deduplication lasts five minutes and Stripe redelivers for three days: it only saves
a little work, the worker's durable marker is the dedupe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import boto3
import orjson
from botocore.exceptions import BotoCoreError, ClientError

from ichido.errors import StorageUnavailable
from ichido.event import Delivery

BATCH = 10  # SQS's most messages per SendMessageBatch / DeleteMessageBatch / ReceiveMessage
BATCH_BYTES = 1024 * 1024  # and the most bytes of message bodies in one SendMessageBatch

T = TypeVar("T")


@dataclass(frozen=True)
class DeadLetter:
    """A message waiting in the DLQ: the event it carries and how often it was received."""

    message_id: str
    receipt_handle: str
    event_id: str
    body: str
    receive_count: int


class SqsQueue:
    """One SQS queue (and its DLQ, for ``ichido dlq``); boto3 finds the endpoint itself
    (``AWS_ENDPOINT_URL`` points it at moto locally)."""

    def __init__(self, queue_url: str, *, dlq_url: str | None = None, client: Any = None) -> None:
        self.url = queue_url
        self.dlq_url = dlq_url
        self.fifo = queue_url.endswith(".fifo")
        self.client = client or boto3.client("sqs")

    # -- the receiver's side -----------------------------------------------------------------

    def send(self, deliveries: Sequence[Delivery]) -> None:
        """Put deliveries on the queue; return only once SQS has stored every one
        (I1, docs/invariants.md)."""
        for chunk in batches(deliveries, lambda d: len(d.body)):
            try:
                if len(chunk) == 1:
                    self.client.send_message(QueueUrl=self.url, **self._message(chunk[0]))
                    continue
                entries = [{"Id": str(i), **self._message(d)} for i, d in enumerate(chunk)]
                answer = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                raise StorageUnavailable(f"could not send to SQS: {exc}") from exc
            if answer.get("Failed"):
                raise StorageUnavailable(f"SQS refused {len(answer['Failed'])} message(s): "
                                         f"{answer['Failed'][0].get('Message')}")

    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        """The receiver's durable write: on the queue, every delivery is "new" (the worker's
        marker tells duplicates apart later)."""
        if deliveries:
            await asyncio.to_thread(self.send, deliveries)
        return [True] * len(deliveries)

    async def aclose(self) -> None:
        return None

    def max_message_size(self) -> int:
        """The queue's ``MaximumMessageSize``: the largest body it takes (read once, at start)."""
        try:
            attributes = self.client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["MaximumMessageSize"])["Attributes"]
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"could not read the queue's attributes: {exc}") from exc
        return int(attributes["MaximumMessageSize"])

    def _message(self, delivery: Delivery) -> dict[str, Any]:
        message: dict[str, Any] = {"MessageBody": delivery.body.decode("utf-8")}
        if self.fifo:
            message["MessageGroupId"] = delivery.object_id or delivery.id
            message["MessageDeduplicationId"] = delivery.id
        return message

    def dead_letter(self, record: dict[str, Any]) -> None:
        """Move a Lambda SQS record to the DLQ now, for an event that can never succeed (the
        worker acknowledges the record after this). Its body and, on FIFO, its group go with it,
        so ``ichido dlq`` shows it and a redrive sends it back as any dead letter."""
        if not self.dlq_url:
            raise StorageUnavailable("no DLQ (ICHIDO_DLQ_URL) to move the message to")
        message: dict[str, Any] = {"MessageBody": record["body"]}
        if self.fifo:
            message["MessageGroupId"] = record.get("attributes", {}).get(
                "MessageGroupId") or "dead"
            message["MessageDeduplicationId"] = record["messageId"]
        try:
            self.client.send_message(QueueUrl=self.dlq_url, **message)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"could not send to the DLQ: {exc}") from exc

    # -- the operator's side -----------------------------------------------------------------

    def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        """Look at the DLQ without consuming it: receive, then make visible again at once."""
        letters = self._hold_dead(limit)
        self._release([letter.receipt_handle for letter in letters])
        return letters

    def redrive(self, event_ids: Iterable[str] | None = None) -> int:
        """Move dead letters (all, or those of ``event_ids``) back to the queue: sent first,
        deleted from the DLQ after, so a crash in between duplicates rather than loses (the
        worker's marker makes the duplicate harmless)."""
        wanted = None if event_ids is None else set(event_ids)
        letters = self._hold_dead(limit=None)
        moving = [l for l in letters if wanted is None or l.event_id in wanted]
        self._release([l.receipt_handle for l in letters if l not in moving])
        for chunk in batches(moving, lambda letter: len(letter.body.encode("utf-8"))):
            self.client.send_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), **self._resend(letter)} for i, letter in enumerate(chunk)])
            self.client.delete_message_batch(QueueUrl=self.dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": l.receipt_handle} for i, l in enumerate(chunk)])
        return len(moving)

    def depth(self) -> dict[str, int]:
        """Messages waiting, in flight, and dead (SQS's approximate counts)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        numbers = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)
        attributes = numbers["Attributes"]
        dead = 0
        if self.dlq_url:
            dead = int(self.client.get_queue_attributes(
                QueueUrl=self.dlq_url, AttributeNames=names[:1])["Attributes"][names[0]])
        return {"pending": int(attributes[names[0]]), "processing": int(attributes[names[1]]),
                "dead": dead}

    def _hold_dead(self, limit: int | None) -> list[DeadLetter]:
        if not self.dlq_url:
            raise StorageUnavailable("no dead-letter queue configured (ICHIDO_DLQ_URL)",
                                     code="no_dlq")
        letters: list[DeadLetter] = []
        while limit is None or len(letters) < limit:
            want = BATCH if limit is None else min(BATCH, limit - len(letters))
            got = self.client.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=want, VisibilityTimeout=60,
                AttributeNames=["All"], MessageSystemAttributeNames=["All"]).get("Messages", [])
            if not got:
                break
            letters += [_letter(message) for message in got]
        return letters

    def _release(self, handles: list[str]) -> None:
        for start in range(0, len(handles), BATCH):
            self.client.change_message_visibility_batch(QueueUrl=self.dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for i, h in enumerate(handles[start:start + BATCH])])

    def _resend(self, letter: DeadLetter) -> dict[str, Any]:
        message: dict[str, Any] = {"MessageBody": letter.body}
        if self.fifo:
            # A fresh deduplication id: the event id may still be inside FIFO's five minutes.
            message["MessageGroupId"] = letter.event_id
            message["MessageDeduplicationId"] = f"{letter.event_id}:{letter.message_id}"
        return message


def batches(items: Sequence[T], size: Callable[[T], int]) -> Iterator[Sequence[T]]:
    """``items`` in runs SendMessageBatch takes: at most ten, and at most 1 MiB of bodies
    (``size`` is measured once per item)."""
    start = 0
    while start < len(items):
        end, total = start, 0
        while end < len(items) and end - start < BATCH:
            length = size(items[end])
            if end > start and total + length > BATCH_BYTES:
                break
            total += length
            end += 1
        yield items[start:end]
        start = end


def event_id_of_body(body: str) -> str:
    """The Stripe event id in a message: a webhook body, or an EventBridge envelope's
    ``detail``; "" when neither (a foreign message, left for the operator)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("detail"), dict):
        doc = doc["detail"]
    event_id = doc.get("id") if isinstance(doc, dict) else None
    return event_id if isinstance(event_id, str) else ""


def _letter(message: dict[str, Any]) -> DeadLetter:
    return DeadLetter(message["MessageId"], message["ReceiptHandle"],
                      event_id_of_body(message["Body"]), message["Body"],
                      int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)))
