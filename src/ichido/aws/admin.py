"""``ichido events``, ``dlq`` and ``stats`` on the AWS layouts: the store's records and counts,
the queue's depth, and dead letters replayed the layout's way (SQS: moved back from the DLQ;
Streams: the item's status set to ``requeued``, which its stream carries to the worker)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Sequence

from ichido.aws import stores
from ichido.aws.bodies import Bodies, resolved_record
from ichido.aws.settings import AwsSettings
from ichido.config import Settings
from ichido.db.base import Database, Transaction
from ichido.inbox.base import EventRecord, Inbox

if TYPE_CHECKING:
    from ichido.queue.sqs import SqsQueue


class AwsAdmin:
    """The operator's commands (``AdminLog``) on an AWS layout: the store's records, and on
    the SQS layout the queue's depth and its DLQ."""

    def __init__(self, store: Inbox, *, sqs: SqsQueue | None = None,
                 database: Database | None = None, bodies: Bodies | None = None) -> None:
        self.store = store
        self.sqs = sqs
        self.database = database
        self.bodies = bodies

    def get(self, event_id: str) -> EventRecord | None:
        """The event; a body the store keeps out of line in S3 is read from there."""
        return resolved_record(self.store.get(event_id), self.bodies)

    def list(self, *, status: str | None = None, type: str | None = None,
             limit: int = 50) -> list[EventRecord]:
        return self.store.list(status=status, type=type, limit=limit)

    def stats(self) -> dict[str, int]:
        numbers = self.store.stats()
        if self.sqs is not None:  # what waits is on the queue, not in the store
            depth = self.sqs.depth()
            numbers.update(pending=depth["pending"], processing=depth["processing"])
        return numbers

    def requeue_dead(self, event_ids: Sequence[str] | None = None) -> int:
        if self.sqs is not None:
            return self.sqs.redrive(event_ids)
        return self.store.requeue_dead(event_ids)  # the Streams layout: its item's status

    def prune(self, older_than_seconds: float) -> int:
        return self.store.prune(older_than_seconds)

    def reading(self) -> AbstractContextManager[Transaction]:
        """The database's reads (SQL on PostgreSQL), for the app's tables."""
        assert self.database is not None, "opened without its database"
        return self.database.reading()

    def ping(self) -> None:
        self.store.ping()

    def close(self) -> None:
        self.store.close()
        if self.database is not None:
            self.database.close()


def open_admin(settings: Settings, aws: AwsSettings | None = None) -> AwsAdmin:
    aws = aws or AwsSettings.from_env()
    database, store = stores.open_store(settings)
    return AwsAdmin(store, sqs=stores.sqs_queue(aws) if aws.layout == "sqs" else None,
                    database=database, bodies=stores.bodies(aws))


def wanted(settings: Settings, env: dict[str, str]) -> bool:
    """Whether the CLI is pointed at an AWS layout rather than a store that is its own queue."""
    return stores.is_dynamodb(settings) or bool(env.get("ICHIDO_QUEUE_URL"))
