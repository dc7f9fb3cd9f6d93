"""moto in server mode: SQS, DynamoDB and DynamoDB Streams over real HTTP on loopback, with
boto3 unchanged (pointed there by the standard AWS_ENDPOINT_URL).

Known moto gaps no test may lean on: FIFO deduplication is forgotten once a message is deleted,
``ClientRequestToken`` is ignored, TTL never expires anything, and an identical repeated PutItem
still writes a MODIFY stream record (AWS writes none). Tests that touch these say so. Two gaps are
closed by the server the tests use (``ichido.aws.local.start_moto``, as ``ichido aws local``
does): moto checks a conditional write and applies it without a lock, so two
writers at once could both pass ``attribute_not_exists``; that server takes DynamoDB's requests
one at a time, which makes each condition atomic as on AWS; and moto gave a FIFO group's later
messages first once the group was visible again, that server gives them from the group's head
(``ichido.aws.moto_fixes``).
"""

from __future__ import annotations

import json
import uuid

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3  # noqa: E402

from tests.support import SECRET  # noqa: E402

# ``moto_endpoint`` and ``aws`` are in tests/conftest.py: contract tests elsewhere run on
# DynamoDB too.


@pytest.fixture
def cold(monkeypatch: pytest.MonkeyPatch, aws: str) -> pytest.MonkeyPatch:
    """A cold start of the deployed functions (``ichido.aws.receiver.handler``, the worker's):
    no function built yet, the secret only in Secrets Manager."""
    from ichido.aws import receiver, worker

    monkeypatch.setattr(receiver, "_handler", None)
    monkeypatch.setattr(worker, "_workers", {})
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("ICHIDO_REDIS_URL", raising=False)
    name = f"ichido/webhook/{uuid.uuid4().hex}"
    arn = boto3.client("secretsmanager").create_secret(Name=name, SecretString=SECRET)["ARN"]
    monkeypatch.setenv("ICHIDO_WEBHOOK_SECRET_ID", arn)
    return monkeypatch


def make_queues(fifo: bool = False, max_receive_count: int = 3,
                max_message_size: int | None = None) -> tuple[str, str]:
    """A queue and its DLQ with a redrive policy, named for this test alone (moto's default
    ``MaximumMessageSize`` is 1 MiB, AWS's since 2025; queues made before took 256 KiB)."""
    sqs = boto3.client("sqs")
    name = f"ichido-{uuid.uuid4().hex[:10]}"
    suffix = ".fifo" if fifo else ""
    fifo_attributes = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=fifo_attributes)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn,
                          "maxReceiveCount": str(max_receive_count)})
    sized = {"MaximumMessageSize": str(max_message_size)} if max_message_size else {}
    queue = sqs.create_queue(QueueName=f"{name}{suffix}", Attributes={
        **fifo_attributes, **sized, "RedrivePolicy": redrive,
        "VisibilityTimeout": "30"})["QueueUrl"]
    return queue, dlq


@pytest.fixture
def queues(aws: str) -> tuple[str, str]:
    return make_queues()


@pytest.fixture
def bucket(aws: str) -> str:
    """An S3 bucket for this test alone (bodies out of line)."""
    name = f"ichido-bodies-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
