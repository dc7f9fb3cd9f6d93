"""The Lambda receiver: ``ichido serve``'s checks and answers, over Function URL payloads,
with the queue as the durable write."""

from __future__ import annotations

import json
import time

import boto3
import orjson
import pytest

from tests.aws.support import SqsLayout, function_url_event
from tests.support import make_event, signed_headers


@pytest.fixture
def layout(queues: tuple[str, str], postgres_url: str):
    built = SqsLayout(postgres_url, *queues)
    yield built
    built.close()


def queued_ids(queue_url: str) -> list[str]:
    messages = boto3.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
    return [json.loads(m["Body"])["id"] for m in messages]


@pytest.mark.parametrize("base64_body", [False, True])
def test_verified_delivery_is_on_the_queue_before_the_200(layout: SqsLayout,
                                                          base64_body: bool) -> None:
    body = make_event("charge.succeeded")
    answer = layout.receiver()(function_url_event(body, base64_body=base64_body), None)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["status"] == "accepted"
    assert queued_ids(layout.queue_url) == [orjson.loads(body)["id"]]


def test_the_queued_body_is_the_signed_bytes_exactly(layout: SqsLayout) -> None:
    body = b'{"id": "evt_spaced_1",  "object":"event","type":"charge.succeeded",' \
           b'"created": 1700000000, "data": {"object": {"id": "ch_1"}}, "note": "\xe3\x81\x82"}'
    assert layout.receiver()(function_url_event(body), None)["statusCode"] == 200
    message = boto3.client("sqs").receive_message(QueueUrl=layout.queue_url)["Messages"][0]
    assert message["Body"].encode("utf-8") == body


def _bad(body: bytes, **headers: str) -> dict:
    return function_url_event(body, {**signed_headers(body), **headers})


REFUSALS = [
    ("no signature", lambda: function_url_event(make_event(), {"Content-Type": "application/json"}),
     400, "missing_signature"),
    ("tampered", lambda: function_url_event(
        make_event().replace(b'"livemode":false', b'"livemode":true'),
        signed_headers(make_event())), 400, "bad_signature"),
    ("stale", lambda: function_url_event(make_event(), signed_headers(
        make_event(), timestamp=int(time.time()) - 301)), 400, "bad_signature"),
    ("not json", lambda: _bad(b"{not json"), 400, "malformed_json"),
    ("not an event", lambda: _bad(orjson.dumps({"object": "charge", "id": "ch_1"})), 400,
     "not_an_event"),
    ("wrong type", lambda: _bad(make_event(), **{"Content-Type": "text/plain"}), 415,
     "unsupported_media_type"),
    ("too large", lambda: _bad(make_event(obj={"id": "pi_big", "pad": "x" * 600_000})), 413,
     "too_large"),
]


@pytest.mark.parametrize("name, build, status, code", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_bad_input_is_refused_with_its_reason_and_nothing_is_queued(
        layout: SqsLayout, name: str, build, status: int, code: str) -> None:
    answer = layout.receiver()(build(), None)
    assert answer["statusCode"] == status, answer
    error = json.loads(answer["body"])["error"]
    if name == "stale":  # a stale header signs another body here: the signature fails first
        assert error["code"] in ("bad_signature", "stale_timestamp")
    else:
        assert error["code"] == code
    assert queued_ids(layout.queue_url) == []


def test_a_stale_but_valid_signature_is_refused_as_stale(layout: SqsLayout) -> None:
    body = make_event()
    event = function_url_event(body, signed_headers(body, timestamp=int(time.time()) - 301))
    answer = layout.receiver()(event, None)
    assert (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) == (
        400, "stale_timestamp")
    assert queued_ids(layout.queue_url) == []


def test_other_methods_get_405(layout: SqsLayout) -> None:
    answer = layout.receiver()(function_url_event(b"", {}, method="GET"), None)
    assert answer["statusCode"] == 405


def test_a_repeat_in_one_environment_is_answered_by_the_seen_tier(layout: SqsLayout) -> None:
    receiver = layout.receiver()
    body = make_event()
    first = receiver(function_url_event(body), None)
    second = receiver(function_url_event(body), None)
    assert json.loads(first["body"])["status"] == "accepted"
    assert json.loads(second["body"]) == {"id": orjson.loads(body)["id"], "status": "duplicate",
                                         "tier": "cache"}
    assert len(queued_ids(layout.queue_url)) == 1
    stats = layout.inbox.stats()
    assert (stats["received"], stats["duplicates_cache"]) == (1, 1)


def test_sqs_unreachable_is_a_503_so_stripe_retries(layout: SqsLayout) -> None:
    boto3.client("sqs").delete_queue(QueueUrl=layout.queue_url)
    answer = layout.receiver()(function_url_event(make_event()), None)
    assert answer["statusCode"] == 503
    assert json.loads(answer["body"])["error"]["code"] == "storage_unavailable"
