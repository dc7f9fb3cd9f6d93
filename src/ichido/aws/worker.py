"""The worker on Lambda: apply each record's event once, report the records that failed.

For SQS it answers with the partial batch response (the event source mapping has
``ReportBatchItemFailures``): the records named in ``batchItemFailures`` stay on the queue and
come back after the visibility timeout; SQS's redrive policy moves one to the DLQ after
``maxReceiveCount`` receives. The others are deleted by Lambda. Each event is applied in one
transaction with its processed marker (``ichido.aws.ledger``), so a redelivery of any kind is
a durable duplicate, acknowledged and counted.
"""

from __future__ import annotations

import enum
import logging
import time
import traceback
from typing import Any, Callable

from ichido.aws.bodies import Bodies
from ichido.aws.envelopes import from_sqs_record, receive_count
from ichido.aws.fetch import AwsFetch
from ichido.aws.ledger import Ledger, StreamsLedger, TwinApplied, twin_note
from ichido.errors import RejectedDelivery
from ichido.event import Delivery, Event
from ichido.handlers import HandlerRegistry
from ichido.queue.base import Status
from ichido.thin import twins
from ichido.thin.reader import FetchFailed
from ichido.thin.twins import is_thin

log = logging.getLogger("ichido.aws.worker")


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    TWIN = "twin"  # its change was applied by its twin: finished, no handler ran
    FAILED = "failed"
    DEAD = "dead"  # failed for good at once (event_expired): recorded dead, not retried


# What a failure keeps of its traceback: the end, where the exception is. A handler's error of any
# length must not make the event's item (DynamoDB: 400 KB, the body beside it) unwritable.
MAX_ERROR = 8 * 1024


class EventApplier:
    """One event, one transaction: marker, change key, handlers, commit; or the failure
    recorded. ``bodies`` reads a body that the receiver put out of line (``ichido.aws.bodies``);
    ``fetch`` completes a thin event before its transaction (``ichido.aws.fetch``)."""

    def __init__(self, handlers: HandlerRegistry, ledger: Ledger,
                 bodies: Bodies | None = None, fetch: AwsFetch | None = None) -> None:
        self.handlers = handlers
        self.ledger = ledger
        self.bodies = bodies or Bodies("", 0)
        self.fetch = fetch

    def apply(self, delivery: Delivery, attempt: int, *, final: bool,
              received_at: float | None = None) -> Outcome:
        """``Outcome.DEAD`` when the attempt failed and can never succeed (Stripe no longer
        keeps the thin event): recorded dead whatever the attempt."""
        handlers = self.handlers.for_type(delivery.type)
        status = Status.PROCESSED if handlers else Status.IGNORED
        try:
            delivery = self.bodies.resolve(delivery)  # from S3 if out of line
            change = twins.change_key(delivery.id, delivery.type, delivery.body) \
                if handlers else None
            event, twin_of = None, None
            if handlers and is_thin(delivery.type, delivery.body):
                if self.fetch is None:
                    raise FetchFailed("fetch_failed", "no fetch stage to complete thin events")
                twin_of = self.fetch.twin_of(delivery)  # applied already: no read
                if twin_of is None:
                    event = self.fetch.complete(delivery, attempt)
            with self.ledger.applying(
                    delivery, Status.TWIN if twin_of else status, attempt,
                    received_at or time.time(), change=None if twin_of else change,
                    note=twin_note(twin_of) if twin_of else None) as tx:
                if tx is None:
                    return Outcome.DUPLICATE
                if twin_of:
                    return Outcome.TWIN
                event = event or Event.from_body(delivery.body, attempt)
                for handler in handlers:
                    handler(event, tx)
        except TwinApplied as twin:
            log.info("event %s (%s): %s", delivery.id, delivery.type, twin)
            return Outcome.TWIN
        except FetchFailed as failed:  # recorded as the core worker records it, by its code
            log.warning("event %s (%s): fetch failed on attempt %d: %s", delivery.id,
                        delivery.type, attempt, failed)
            self._record(delivery, attempt, str(failed), final or failed.final)
            return Outcome.DEAD if failed.final else Outcome.FAILED
        except Exception:  # recorded with its traceback on the event, retried by the queue
            error = traceback.format_exc(limit=-8)[-MAX_ERROR:]
            log.warning("event %s (%s) failed attempt %d: %s", delivery.id, delivery.type,
                        attempt, error.strip().splitlines()[-1])
            self._record(delivery, attempt, error, final)
            return Outcome.FAILED
        return Outcome.APPLIED

    def _record(self, delivery: Delivery, attempt: int, error: str, final: bool) -> None:
        try:
            self.ledger.record_failure(delivery, attempt, error, dead=final)
        except Exception:  # the store is what failed: the queue still retries the event
            log.exception("could not record the failure of %s", delivery.id)


class SqsWorker:
    """``handle`` is the Lambda handler's body for an SQS batch. ``dead_letter`` sends a
    record to the DLQ itself (``SqsQueue.dead_letter``), for an event that can never succeed
    (``Outcome.DEAD``); without it, or when that send fails, such a record is reported failed
    and SQS's redrive policy moves it after its receives."""

    def __init__(self, applier: EventApplier, *, max_receive_count: int,
                 fifo: bool = False,
                 dead_letter: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.applier = applier
        self.max_receive_count = max_receive_count
        self.fifo = fifo
        self.dead_letter = dead_letter

    def handle(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        """Reported failed: each record that failed and, on FIFO, every later record of its
        message group (applied now, they would overtake it). Other groups go on: one group's
        poison holds back only that group, as Powertools' ``SqsFifoPartialProcessor`` with
        ``skip_group_on_error`` does. A record that failed its last attempt (recorded dead, the
        DLQ's next) holds back nothing: its group's later records apply after it, as they will
        once SQS has moved it; held back, they would spend their receives beside it and be
        dead-lettered with it. A record dead at once is moved to the DLQ here and acknowledged."""
        failures: list[dict[str, str]] = []
        held: set[str] = set()  # FIFO groups whose later records must wait
        for record in event.get("Records", []):
            group = record.get("attributes", {}).get("MessageGroupId", "") if self.fifo else None
            if group in held:
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            attempt = receive_count(record)
            outcome = self._apply(record, attempt)
            if outcome is Outcome.DEAD and self._moved(record):
                continue
            if outcome in (Outcome.FAILED, Outcome.DEAD):
                failures.append({"itemIdentifier": record["messageId"]})
                if group is not None and outcome is Outcome.FAILED \
                        and attempt < self.max_receive_count:
                    held.add(group)
        return {"batchItemFailures": failures}

    def _moved(self, record: dict[str, Any]) -> bool:
        if self.dead_letter is None:
            return False
        try:
            self.dead_letter(record)
        except Exception:  # the queue's redrive policy still moves it, receives later
            log.exception("could not move message %s to the DLQ", record.get("messageId"))
            return False
        return True

    def _apply(self, record: dict[str, Any], attempt: int) -> Outcome:
        try:
            delivery = from_sqs_record(record)
        except RejectedDelivery as exc:
            # Never succeeds: let SQS dead-letter it, where an operator sees it whole.
            log.error("message %s is not a Stripe event (%s): left for the DLQ",
                      record.get("messageId"), exc.code)
            return Outcome.FAILED
        sent = record.get("attributes", {}).get("SentTimestamp")
        return self.applier.apply(delivery, attempt, final=attempt >= self.max_receive_count,
                                  received_at=int(sent) / 1000 if sent else None)


LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class StreamsWorker:
    """``handle`` is the Lambda handler's body for a DynamoDB Streams batch of the inbox table.

    Records of one shard must apply in order: after a failure the rest of the batch is
    reported too, and Lambda retries from the first failed record. An event whose attempts are
    spent is marked dead by the worker and reported done, so its shard moves on."""

    def __init__(self, applier: EventApplier, ledger: StreamsLedger, *, max_attempts: int,
                 wanted: Callable[[dict[str, Any]], bool]) -> None:
        self.applier = applier
        self.ledger = ledger
        self.max_attempts = max_attempts
        self.wanted = wanted

    def handle(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        from ichido.aws.envelopes import from_stream_record

        failures: list[dict[str, str]] = []
        for record in event.get("Records", []):
            sequence = record["dynamodb"]["SequenceNumber"]
            if failures:
                failures.append({"itemIdentifier": sequence})
                continue
            if not self.wanted(record):
                continue
            delivery = from_stream_record(record)
            state = self.ledger.state(delivery.id) or {}
            attempt = int(state.get("attempts", 0)) + 1
            final = attempt >= self.max_attempts
            outcome = self.applier.apply(delivery, attempt, final=final)
            if outcome is Outcome.FAILED and not final:
                failures.append({"itemIdentifier": sequence})
        return {"batchItemFailures": failures}


# -- the functions' entry points (deploy/template.yaml), built once per cold start ------------

_workers: dict[str, LambdaHandler] = {}


def _worker(layout: str) -> LambdaHandler:
    if layout not in _workers:
        from ichido.aws import stores
        from ichido.aws.settings import AwsSettings

        aws = AwsSettings.from_env()
        settings = stores.settings_from_env(aws)
        app = stores.load_app()
        handlers = app.handlers if app else HandlerRegistry()
        reader = stores.reader(settings, aws, app)
        if layout == "sqs":
            ledger = stores.ledger(settings)
            applier = EventApplier(handlers, ledger, stores.bodies(aws),
                                   stores.fetch(ledger, reader))
            queue = stores.sqs_queue(aws)
            _workers[layout] = SqsWorker(
                applier, max_receive_count=aws.max_receive_count, fifo=aws.fifo,
                dead_letter=queue.dead_letter if aws.dlq_url else None).handle
        else:
            from ichido.queue.streams import wanted

            ledger = stores.streams_ledger(settings)
            applier = EventApplier(handlers, ledger, stores.bodies(aws),
                                   stores.fetch(ledger, reader))
            _workers[layout] = StreamsWorker(applier, ledger, max_attempts=aws.max_receive_count,
                                             wanted=wanted).handle
    return _workers[layout]


def sqs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``ichido.aws.worker.sqs_handler``: the SQS event source mapping's function."""
    return _worker("sqs")(event, context)


def streams_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``ichido.aws.worker.streams_handler``: the DynamoDB Streams mapping's function."""
    return _worker("streams")(event, context)
