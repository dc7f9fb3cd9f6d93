"""The functions as the template deploys them: ``ichido.aws.receiver.handler`` and
``ichido.aws.worker.sqs_handler``/``streams_handler``, configured by environment alone, with the
webhook secret (and PostgreSQL's URL) read from Secrets Manager at cold start."""

from __future__ import annotations

import json

import boto3
import orjson
import pytest

from ichido.aws import receiver, worker
from ichido.aws.runner import SqsPoller, StreamPoller
from ichido.queue import streams
from tests.aws.support import DynamoEffects, dynamodb_url, function_url_event
from tests.support import effect_counts, make_event, migrate_effects, open_store


def test_sqs_and_dynamodb_from_the_environment(cold: pytest.MonkeyPatch,
                                               queues: tuple[str, str]) -> None:
    effects = DynamoEffects()
    for name, value in {"ICHIDO_DATABASE_URL": dynamodb_url(), "ICHIDO_QUEUE_URL": queues[0],
                        "ICHIDO_DLQ_URL": queues[1], "EFFECTS_TABLE": effects.table,
                        "ICHIDO_APP": "tests.aws.dynamodb_app:app"}.items():
        cold.setenv(name, value)
    body = make_event("charge.succeeded")
    answer = receiver.handler(function_url_event(body), None)
    assert answer["statusCode"] == 200, answer
    assert SqsPoller(queues[0], worker.sqs_handler, failed_visibility=0).drain() == 1
    assert effects.counts(None) == {orjson.loads(body)["id"]: 1}


def test_sqs_and_postgresql_with_the_url_in_secrets_manager(
        cold: pytest.MonkeyPatch, queues: tuple[str, str], postgres_url: str) -> None:
    migrate_effects(postgres_url)
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"ichido/db/{id(cold)}", SecretString=postgres_url)["ARN"]
    cold.delenv("ICHIDO_DATABASE_URL", raising=False)
    for name, value in {"ICHIDO_DATABASE_URL_SECRET_ID": secret, "ICHIDO_QUEUE_URL": queues[0],
                        "ICHIDO_APP": "tests.apps.effects:app"}.items():
        cold.setenv(name, value)
    body = make_event("charge.succeeded")
    assert receiver.handler(function_url_event(body), None)["statusCode"] == 200
    SqsPoller(queues[0], worker.sqs_handler, failed_visibility=0).drain()
    inbox = open_store(postgres_url)
    try:
        assert effect_counts(inbox) == {orjson.loads(body)["id"]: 1}
    finally:
        inbox.close()


def test_streams_from_the_environment(cold: pytest.MonkeyPatch, bucket: str) -> None:
    effects = DynamoEffects()
    url = dynamodb_url()
    for name, value in {"ICHIDO_DATABASE_URL": url, "ICHIDO_AWS_LAYOUT": "streams",
                        "ICHIDO_BODY_BUCKET": bucket,
                        "EFFECTS_TABLE": effects.table,
                        "ICHIDO_APP": "tests.aws.dynamodb_app:app"}.items():
        cold.setenv(name, value)
    body = make_event("charge.succeeded")
    answer = receiver.handler(function_url_event(body), None)
    assert json.loads(answer["body"])["status"] == "accepted"
    arn = streams.StreamsQueue(url.split("://")[1]).stream_arn()
    StreamPoller(arn, worker.streams_handler, accepts=streams.wanted).drain()
    assert effects.counts(None) == {orjson.loads(body)["id"]: 1}


def test_a_missing_queue_url_is_a_config_error(cold: pytest.MonkeyPatch) -> None:
    cold.setenv("ICHIDO_DATABASE_URL", dynamodb_url())
    from ichido.errors import ConfigError

    with pytest.raises(ConfigError, match="ICHIDO_QUEUE_URL"):
        receiver.handler(function_url_event(make_event()), None)
