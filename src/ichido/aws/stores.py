"""Which engines the Lambda functions use, from the same URLs as everywhere else:
``ICHIDO_DATABASE_URL`` (``dynamodb://TABLE`` or ``postgresql://…``), ``ICHIDO_QUEUE_URL``
(the SQS queue) and ``ICHIDO_REDIS_URL`` (an optional ElastiCache seen tier)."""

from __future__ import annotations

import asyncio
import importlib
import os
from typing import TYPE_CHECKING, Any, Callable, Sequence

import stripe

from ichido.aws.bodies import STREAMS_INLINE_MAX, Bodies, with_bodies
from ichido.aws.fetch import AwsFetch, DynamoFetched, SqlFetched
from ichido.aws.ledger import Ledger, SqlLedger
from ichido.aws.settings import AwsSettings
from ichido.config import Settings, split_secrets
from ichido.errors import ConfigError
from ichido.event import Delivery
from ichido.group_commit import DurableWrite
from ichido.db import open_database
from ichido.db.base import Database
from ichido.inbox import Inbox, process_shard
from ichido.recovery.settings import stripe_client_from_env
from ichido.schema import open_inbox
from ichido.seen import open_seen
from ichido.seen.base import SeenCache
from ichido.thin.reader import Reader

if TYPE_CHECKING:
    from ichido.app import App
    from ichido.aws.dynamodb_ledger import DynamoLedger
    from ichido.inbox.dynamodb import DynamoInbox
    from ichido.queue.sqs import SqsQueue


def settings_from_env(aws: AwsSettings) -> Settings:
    """Core settings, with the secrets the template keeps in Secrets Manager filled in: the
    webhook secret and, on PostgreSQL, the database URL (it holds a password)."""
    settings = Settings.from_env()
    secret_ids = {"webhook_secrets": None if settings.webhook_secrets else aws.secret_id,
                  "database_url": os.environ.get("ICHIDO_DATABASE_URL_SECRET_ID")}
    wanted = {name: sid for name, sid in secret_ids.items() if sid}
    if not wanted:
        return settings
    import boto3

    client = boto3.client("secretsmanager")
    values: dict[str, Any] = {name: client.get_secret_value(SecretId=sid)["SecretString"].strip()
                              for name, sid in wanted.items()}
    if "webhook_secrets" in values:
        values["webhook_secrets"] = split_secrets(values["webhook_secrets"])
    return settings.with_(**values)


def load_app() -> "App | None":
    """The user's ``ichido.App`` named by ``ICHIDO_APP`` (``module:attribute``), or None."""
    spec = os.environ.get("ICHIDO_APP")
    if not spec:
        return None
    module_name, _, attribute = spec.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    return app() if callable(app) and not hasattr(app, "handlers") else app


def is_dynamodb(settings: Settings) -> bool:
    return settings.database_url.startswith("dynamodb:")


def open_store(settings: Settings) -> tuple[Database, Inbox]:
    """The database and the inbox on it (DynamoDB's table, or PostgreSQL's schema, checked)."""
    database = open_database(settings)
    try:
        return database, open_inbox(settings, database)
    except BaseException:
        database.close()
        raise


def ledger(settings: Settings) -> Ledger:
    """The worker's marker, on the store that holds the handlers' writes (its schema checked
    by opening the inbox there)."""
    from ichido.db.dynamodb import DynamoDatabase
    from ichido.db.sql import SqlDatabase

    database, _inbox = open_store(settings)
    if isinstance(database, DynamoDatabase):
        from ichido.aws.dynamodb_ledger import DynamoLedger

        return DynamoLedger(database, shard=process_shard())
    assert isinstance(database, SqlDatabase)  # open_inbox knows no other engine
    return SqlLedger(database, process_shard())


def fetch(ledger: Ledger, reader: Reader) -> AwsFetch:
    """The worker's fetch stage, keeping what it reads where the ledger writes."""
    from ichido.aws.dynamodb_ledger import DynamoLedger

    if isinstance(ledger, DynamoLedger):
        return AwsFetch(reader, DynamoFetched(ledger.database, ledger.marker_sk))
    assert isinstance(ledger, SqlLedger)  # the two ledgers there are
    return AwsFetch(reader, SqlFetched(ledger.database))


def reader(settings: Settings, aws: AwsSettings, app: "App | None") -> Reader:
    """The SDK reader of thin events: the App's (``STRIPE_API_KEY``), or one whose key is read
    from Secrets Manager (``ICHIDO_STRIPE_API_KEY_SECRET_ID``) when the first read needs it."""
    secret_id = aws.api_key_secret_id
    if not secret_id:
        return app.reader if app is not None else Reader(
            settings.fetch_rate, make_client=stripe_client_from_env)

    def client() -> stripe.StripeClient:
        import boto3

        key = boto3.client("secretsmanager").get_secret_value(
            SecretId=secret_id)["SecretString"].strip()
        base = os.environ.get("STRIPE_API_BASE")
        return stripe.StripeClient(key, max_network_retries=0,
                                   base_addresses={"api": base} if base else None)

    return Reader(settings.fetch_rate, make_client=client)


def streams_ledger(settings: Settings) -> "DynamoLedger":
    """The Streams worker's ledger, on the table whose stream it reads."""
    from ichido.aws.dynamodb_ledger import DynamoLedger

    return DynamoLedger(streams_store(settings).database, shard=process_shard(),
                        marker_apart=True)


def streams_store(settings: Settings) -> "DynamoInbox":
    """The Streams layout's table: the receiver's conditional put, the operator's reads."""
    from ichido.inbox.dynamodb import DynamoInbox

    if not is_dynamodb(settings):
        raise ConfigError("the streams layout needs a dynamodb:// ICHIDO_DATABASE_URL")
    _database, store = open_store(settings)
    assert isinstance(store, DynamoInbox)  # a dynamodb:// URL opens DynamoDB's inbox
    return store


def sqs_queue(aws: AwsSettings) -> "SqsQueue":
    from ichido.queue.sqs import SqsQueue

    if not aws.queue_url:
        raise ConfigError("ICHIDO_QUEUE_URL is not set (the SQS queue's URL)")
    return SqsQueue(aws.queue_url, dlq_url=aws.dlq_url)


def receiver_store(settings: Settings, aws: AwsSettings) -> tuple[DurableWrite, str]:
    """The receiver's durable write, and a name for its seen tier's keys. Checked at start:
    a layout that cannot hold every body up to ``ICHIDO_MAX_BODY`` is a ``ConfigError``."""
    if aws.layout == "streams":
        store = streams_store(settings)
        bodies = Bodies("streams", STREAMS_INLINE_MAX, aws.body_bucket)
        return with_bodies(store, bodies, settings.max_body_bytes), store.table_name
    queue = sqs_queue(aws)
    counter = ledger(settings)
    bodies = Bodies("sqs", queue.max_message_size(), aws.body_bucket)
    return (with_bodies(QueueWrite(queue, counter.count), bodies, settings.max_body_bytes),
            queue.url.rstrip("/").rsplit("/", 1)[-1])


def bodies(aws: AwsSettings) -> Bodies:
    """For the worker and the admin: where pointers are read (the ceiling is the receiver's)."""
    return Bodies(aws.layout, 0, aws.body_bucket)


class QueueWrite:
    """The receiver's durable write on the SQS layout: send to the queue. The seen tier's
    hits never reach the worker, so they are counted here, in the store's counters."""

    def __init__(self, queue: "SqsQueue",
                 count: Callable[[dict[str, int]], None] | None = None) -> None:
        self.queue = queue
        self.count = count

    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        accepted = await self.queue.accept_async(deliveries)
        if cache_hits and self.count is not None:
            await asyncio.to_thread(self.count, {"received": cache_hits,
                                                 "duplicates_cache": cache_hits})
        return accepted

    def durable_among(self, event_ids: Sequence[str]) -> set[str] | None:
        """The queue cannot tell which ids it ever took: the worker's marker is the truth."""
        return None

    async def aclose(self) -> None:
        return None


def seen_tier(settings: Settings, namespace: str) -> SeenCache:
    return open_seen(settings, namespace)
