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
from ichido.aws.ledger import Ledger, StreamsLedger
from ichido.errors import IchidoError, RejectedDelivery
from ichido.event import Delivery, Event
from ichido.handlers import HandlerRegistry
from ichido.queue.base import Status
from ichido.thin.twins import is_thin

log = logging.getLogger("ichido.aws.worker")


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    FAILED = "failed"


# What a failure keeps of its traceback: the end, where the exception is. A handler's error of any
# length must not make the event's item (DynamoDB: 400 KB, the body beside it) unwritable.
MAX_ERROR = 8 * 1024


class ThinNotOnAws(IchidoError):
    """The AWS layouts have no fetch stage yet (``ichido.thin``): a thin event with handlers
    fails its attempts with this reason and rests in the dead letters, kept for a replay,
    rather than reach its handlers without the object it points to."""

    code = "thin_not_on_aws"


class EventApplier:
    """One event, one transaction: marker, handlers, commit; or the failure recorded.
    ``bodies`` reads a body that the receiver put out of line (``ichido.aws.bodies``)."""

    def __init__(self, handlers: HandlerRegistry, ledger: Ledger,
                 bodies: Bodies | None = None) -> None:
        self.handlers = handlers
        self.ledger = ledger
        self.bodies = bodies or Bodies("", 0)

    def apply(self, delivery: Delivery, attempt: int, *, final: bool,
              received_at: float | None = None) -> Outcome:
        handlers = self.handlers.for_type(delivery.type)
        status = Status.PROCESSED if handlers else Status.IGNORED
        try:
            delivery = self.bodies.resolve(delivery)  # from S3 if out of line
            if handlers and is_thin(delivery.type, delivery.body):
                raise ThinNotOnAws(f"{ThinNotOnAws.code}: thin event {delivery.id} needs the"
                                   " fetch stage, which the AWS layouts do not run yet")
            with self.ledger.applying(delivery, status, attempt,
                                      received_at or time.time()) as tx:
                if tx is None:
                    return Outcome.DUPLICATE
                event = Event.from_body(delivery.body, attempt)
                for handler in handlers:
                    handler(event, tx)
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
    """``handle`` is the Lambda handler's body for an SQS batch."""

    def __init__(self, applier: EventApplier, *, max_receive_count: int,
                 fifo: bool = False) -> None:
        self.applier = applier
        self.max_receive_count = max_receive_count
        self.fifo = fifo

    def handle(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        """Reported failed: each record that failed and, on FIFO, every later record of its
        message group (applied now, they would overtake it). Other groups go on: one group's
        poison holds back only that group, as Powertools' ``SqsFifoPartialProcessor`` with
        ``skip_group_on_error`` does. A record that failed its last attempt (recorded dead, the
        DLQ's next) holds back nothing: its group's later records apply after it, as they will
        once SQS has moved it; held back, they would spend their receives beside it and be
        dead-lettered with it."""
        failures: list[dict[str, str]] = []
        held: set[str] = set()  # FIFO groups whose later records must wait
        for record in event.get("Records", []):
            group = record.get("attributes", {}).get("MessageGroupId", "") if self.fifo else None
            if group in held:
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            attempt = receive_count(record)
            if self._apply(record, attempt) is Outcome.FAILED:
                failures.append({"itemIdentifier": record["messageId"]})
                if group is not None and attempt < self.max_receive_count:
                    held.add(group)
        return {"batchItemFailures": failures}

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
        if layout == "sqs":
            applier = EventApplier(handlers, stores.ledger(settings), stores.bodies(aws))
            _workers[layout] = SqsWorker(applier, max_receive_count=aws.max_receive_count,
                                         fifo=aws.fifo).handle
        else:
            from ichido.queue.streams import wanted

            ledger = stores.streams_ledger(settings)
            applier = EventApplier(handlers, ledger, stores.bodies(aws))
            _workers[layout] = StreamsWorker(applier, ledger, max_attempts=aws.max_receive_count,
                                             wanted=wanted).handle
    return _workers[layout]


def sqs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``ichido.aws.worker.sqs_handler``: the SQS event source mapping's function."""
    return _worker("sqs")(event, context)


def streams_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``ichido.aws.worker.streams_handler``: the DynamoDB Streams mapping's function."""
    return _worker("streams")(event, context)
