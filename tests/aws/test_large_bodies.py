"""Every event up to ``ICHIDO_MAX_BODY`` is storable on every AWS layout: a body larger than the
layout's durable write holds (SQS: the queue's ``MaximumMessageSize``; Streams: DynamoDB's item)
goes out of line to S3, the queue or the item holds its pointer. Through the deployed
functions (``ichido.aws.receiver.handler``, ``worker.sqs_handler``/``streams_handler``),
configured by environment alone, against moto."""

from __future__ import annotations

import json
from collections import Counter

import boto3
import orjson
import pytest

from ichido.aws import receiver, worker
from ichido.aws.admin import open_admin
from ichido.aws.runner import SqsPoller, StreamPoller
from ichido.aws.settings import AwsSettings
from ichido.config import Settings
from ichido.errors import ConfigError
from ichido.queue import streams
from tests.aws.conftest import make_queues
from tests.aws.support import DynamoEffects, dynamodb_url, function_url_event, large_event
from tests.support import effect_counts, make_event, migrate_effects, open_store

SQS_BEFORE_2025 = 256 * 1024  # a queue's MaximumMessageSize as AWS made them until 2025


def deliver(body: bytes) -> dict:
    answer = receiver.handler(function_url_event(body), None)
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])


def cold_start_again(cold: pytest.MonkeyPatch) -> None:
    """Another execution environment: its own seen tier, so a copy reaches the durable tier."""
    cold.setattr(receiver, "_handler", None)


def objects(bucket: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


class SqlEffects:
    """tests/apps/effects.py's table on PostgreSQL, counted like ``DynamoEffects``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def counts(self, _inbox) -> Counter:
        inbox = open_store(self.url)
        try:
            return effect_counts(inbox)
        finally:
            inbox.close()


@pytest.fixture
def sqs_env(cold: pytest.MonkeyPatch, bucket: str) -> tuple[str, DynamoEffects]:
    effects = DynamoEffects()
    queue, dlq = make_queues(max_message_size=SQS_BEFORE_2025)
    for name, value in {"ICHIDO_DATABASE_URL": dynamodb_url(), "ICHIDO_QUEUE_URL": queue,
                        "ICHIDO_DLQ_URL": dlq, "ICHIDO_BODY_BUCKET": bucket,
                        "EFFECTS_TABLE": effects.table,
                        "ICHIDO_APP": "tests.aws.dynamodb_app:app"}.items():
        cold.setenv(name, value)
    return queue, effects


@pytest.fixture(params=["dynamodb", "postgres"])
def any_sqs_env(request: pytest.FixtureRequest, cold: pytest.MonkeyPatch,
                bucket: str) -> tuple[str, DynamoEffects | SqlEffects]:
    """The SQS layout on either store (PostgreSQL keeps the body in its row, read from S3)."""
    if request.param == "dynamodb":
        return request.getfixturevalue("sqs_env")
    url = request.getfixturevalue("postgres_url")
    migrate_effects(url)
    queue, dlq = make_queues(max_message_size=SQS_BEFORE_2025)
    for name, value in {"ICHIDO_DATABASE_URL": url, "ICHIDO_QUEUE_URL": queue,
                        "ICHIDO_DLQ_URL": dlq, "ICHIDO_BODY_BUCKET": bucket,
                        "ICHIDO_APP": "tests.apps.effects:app"}.items():
        cold.setenv(name, value)
    return queue, SqlEffects(url)


@pytest.fixture
def streams_env(cold: pytest.MonkeyPatch, bucket: str) -> tuple[str, DynamoEffects]:
    effects = DynamoEffects()
    url = dynamodb_url()
    for name, value in {"ICHIDO_DATABASE_URL": url, "ICHIDO_AWS_LAYOUT": "streams",
                        "ICHIDO_BODY_BUCKET": bucket, "EFFECTS_TABLE": effects.table,
                        "ICHIDO_APP": "tests.aws.dynamodb_app:app"}.items():
        cold.setenv(name, value)
    return streams.StreamsQueue(url.split("://")[1]).stream_arn(), effects


def test_a_500_kb_event_on_the_sqs_layout_is_stored_applied_once_and_a_copy_is_a_duplicate(
        cold: pytest.MonkeyPatch, any_sqs_env: tuple[str, DynamoEffects | SqlEffects],
        bucket: str) -> None:
    queue, effects = any_sqs_env
    body = large_event()
    event_id = orjson.loads(body)["id"]
    assert deliver(body)["status"] == "accepted"  # was 503 forever: larger than the queue takes
    assert objects(bucket) == [f"events/{event_id}"]
    poller = SqsPoller(queue, worker.sqs_handler, failed_visibility=0)
    assert poller.drain() == 1
    assert effects.counts(None) == {event_id: 1}
    cold_start_again(cold)
    assert deliver(body)["status"] == "accepted"  # a new environment: only the marker knows
    assert poller.drain() == 1
    assert effects.counts(None) == {event_id: 1}
    admin = open_admin(Settings.from_env(), AwsSettings.from_env())
    try:
        assert admin.store.stats()["duplicates_durable"] == 1
        record = admin.get(event_id)  # `ichido events show`
        assert record.status == "processed"
        # PostgreSQL's row keeps the body as read from S3; DynamoDB's marker on SQS keeps none
        assert record.body == (b"" if isinstance(effects, DynamoEffects) else body)
    finally:
        admin.close()


def test_a_500_kb_event_on_the_streams_layout_is_stored_applied_once_and_a_copy_is_a_duplicate(
        cold: pytest.MonkeyPatch, streams_env: tuple[str, DynamoEffects], bucket: str) -> None:
    arn, effects = streams_env
    body = large_event()
    event_id = orjson.loads(body)["id"]
    assert deliver(body)["status"] == "accepted"  # was 503 forever: past DynamoDB's 400 KB
    StreamPoller(arn, worker.streams_handler, accepts=streams.wanted).drain()
    assert effects.counts(None) == {event_id: 1}
    cold_start_again(cold)
    assert deliver(body) == {"id": event_id, "status": "duplicate", "tier": "durable"}
    StreamPoller(arn, worker.streams_handler, accepts=streams.wanted).drain()
    assert effects.counts(None) == {event_id: 1}
    admin = open_admin(Settings.from_env(), AwsSettings.from_env())
    try:
        record = admin.get(event_id)  # `ichido events show`: the body as Stripe sent it
        assert (record.status, record.body) == ("processed", body)
    finally:
        admin.close()


def test_a_failure_between_the_s3_put_and_the_send_answers_503_and_the_retry_loses_nothing(
        cold: pytest.MonkeyPatch, sqs_env: tuple[str, DynamoEffects], bucket: str) -> None:
    """S3 first, then the queue, then the 2xx: the queue gone at that moment, the body is in S3
    with nothing naming it and Stripe gets 503; its retry overwrites the object and is applied."""
    queue, effects = sqs_env
    deliver(make_event("charge.succeeded"))  # the receiver is started (its ceiling read)
    SqsPoller(queue, worker.sqs_handler, failed_visibility=0).drain()
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    sqs.delete_queue(QueueUrl=queue)
    body = large_event()
    event_id = orjson.loads(body)["id"]
    answer = receiver.handler(function_url_event(body), None)
    assert answer["statusCode"] == 503, answer
    assert objects(bucket) == [f"events/{event_id}"]  # an orphan, not a loss
    sqs.create_queue(QueueName=queue.rsplit("/", 1)[-1], Attributes={
        name: attributes[name] for name in ("MaximumMessageSize", "RedrivePolicy")})
    assert deliver(body)["status"] == "accepted"  # Stripe's retry
    SqsPoller(queue, worker.sqs_handler, failed_visibility=0).drain()
    assert effects.counts(None)[event_id] == 1
    assert objects(bucket) == [f"events/{event_id}"]


def test_small_events_never_touch_s3(cold: pytest.MonkeyPatch,
                                     sqs_env: tuple[str, DynamoEffects], bucket: str) -> None:
    queue, effects = sqs_env
    body = make_event("charge.succeeded")
    deliver(body)
    SqsPoller(queue, worker.sqs_handler, failed_visibility=0).drain()
    assert effects.counts(None) == {orjson.loads(body)["id"]: 1}
    assert objects(bucket) == []


def test_a_lost_body_object_fails_the_event_into_the_dlq_not_into_silence(
        cold: pytest.MonkeyPatch, sqs_env: tuple[str, DynamoEffects], bucket: str) -> None:
    queue, effects = sqs_env
    body = large_event(300_000)
    event_id = orjson.loads(body)["id"]
    deliver(body)
    boto3.client("s3").delete_object(Bucket=bucket, Key=f"events/{event_id}")
    SqsPoller(queue, worker.sqs_handler, failed_visibility=0).drain()
    assert effects.counts(None) == {}
    admin = open_admin(Settings.from_env(), AwsSettings.from_env())
    try:
        assert [letter.event_id for letter in admin.sqs.dead_letters()] == [event_id]
        record = admin.get(event_id)
        assert record.status == "dead" and "is not in S3" in record.last_error
    finally:
        admin.close()


@pytest.mark.parametrize("layout", ["sqs", "streams"])
def test_a_body_limit_the_layout_cannot_hold_without_a_bucket_is_refused_at_start(
        cold: pytest.MonkeyPatch, layout: str) -> None:
    cold.setenv("ICHIDO_DATABASE_URL", dynamodb_url())
    cold.setenv("ICHIDO_AWS_LAYOUT", layout)
    if layout == "sqs":
        cold.setenv("ICHIDO_QUEUE_URL", make_queues(max_message_size=SQS_BEFORE_2025)[0])
    with pytest.raises(ConfigError, match="ICHIDO_MAX_BODY .* ICHIDO_BODY_BUCKET"):
        receiver.handler(function_url_event(make_event()), None)
    cold.setenv("ICHIDO_MAX_BODY", "256KiB")  # what the layout holds: no bucket needed
    assert receiver.handler(function_url_event(make_event()), None)["statusCode"] == 200
