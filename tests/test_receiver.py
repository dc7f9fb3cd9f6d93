"""The webhook endpoint: every refusal has its status and code, and nothing refused is stored
(I6, docs/invariants.md).

Each refusal is checked twice: in-process through the ASGI app (quick, on each backend), and
over real HTTP against `ichido serve` in a subprocess, after which the store must be empty.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

import httpx
import orjson

from ichido import App, signature
from ichido.config import Settings
from tests.support import (
    SECRET,
    asgi_client,
    cli_json,
    effect_counts,
    event_id_of,
    free_port,
    in_process_app,
    make_event,
    open_store,
    post_async,
    record_effect,
    run_async,
    run_cli,
    signed_headers,
    start_server,
    tiers_match,
)

LIMIT = 512 * 1024
JSON = "application/json"


def event_doc(**changes: object) -> dict:
    doc = orjson.loads(make_event("charge.succeeded"))
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


_DROP = object()


@dataclass
class Refusal:
    """One request that must be refused: the body and headers are built at send time."""

    name: str
    status: int
    code: str
    build: Callable[[], tuple[bytes | Iterator[bytes], dict[str, str]]]


def _signed(body: bytes, **header_changes: str) -> tuple[bytes, dict[str, str]]:
    return body, {**signed_headers(body), **header_changes}


def _signed_doc(doc: object) -> tuple[bytes, dict[str, str]]:
    return _signed(orjson.dumps(doc))


def _without_signature() -> tuple[bytes, dict[str, str]]:
    return make_event(), {"Content-Type": JSON}


def _tampered() -> tuple[bytes, dict[str, str]]:
    body = make_event()
    headers = signed_headers(body)
    return body.replace(b'"livemode":false', b'"livemode":true'), headers


def _stale() -> tuple[bytes, dict[str, str]]:
    body = make_event()
    return body, signed_headers(body, timestamp=int(time.time()) - 301)


def _oversized_declared() -> tuple[bytes, dict[str, str]]:
    body = make_event(obj={"id": "pi_big", "object": "payment_intent", "pad": "x" * LIMIT})
    return _signed(body)


def _oversized_chunked() -> tuple[Iterator[bytes], dict[str, str]]:
    body = make_event(obj={"id": "pi_big", "object": "payment_intent", "pad": "y" * LIMIT})
    headers = signed_headers(body)

    def chunks() -> Iterator[bytes]:  # an iterator: httpx sends it chunked, with no length
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    return chunks(), headers


REFUSALS = [
    Refusal("no_signature_header", 400, "missing_signature", _without_signature),
    Refusal("empty_signature_header", 400, "missing_signature",
            lambda: _signed(make_event(), **{"Stripe-Signature": ""})),
    Refusal("wrong_secret", 400, "bad_signature",
            lambda: (lambda b: (b, signed_headers(b, secrets=["whsec_someone_else"])))(make_event())),
    Refusal("tampered_body", 400, "bad_signature", _tampered),
    Refusal("unparsable_signature", 400, "bad_signature",
            lambda: _signed(make_event(), **{"Stripe-Signature": "sha256=abc"})),
    Refusal("stale_timestamp", 400, "stale_timestamp", _stale),
    Refusal("malformed_json", 400, "malformed_json", lambda: _signed(b'{"id": "evt_1", "object"')),
    Refusal("not_utf8", 400, "invalid_utf8",
            lambda: _signed(b'{"id":"evt_\xff\xfe","object":"event"}')),
    Refusal("json_array", 400, "not_an_event", lambda: _signed_doc([event_doc()])),
    Refusal("json_string", 400, "not_an_event", lambda: _signed_doc("evt_123")),
    Refusal("no_id", 400, "not_an_event", lambda: _signed_doc(event_doc(id=_DROP))),
    Refusal("id_not_evt", 400, "not_an_event", lambda: _signed_doc(event_doc(id="ch_123"))),
    Refusal("id_not_a_string", 400, "not_an_event", lambda: _signed_doc(event_doc(id=123))),
    Refusal("no_type", 400, "not_an_event", lambda: _signed_doc(event_doc(type=_DROP))),
    Refusal("empty_type", 400, "not_an_event", lambda: _signed_doc(event_doc(type=""))),
    Refusal("created_string", 400, "not_an_event",
            lambda: _signed_doc(event_doc(created="1767000000"))),
    Refusal("created_float", 400, "not_an_event", lambda: _signed_doc(event_doc(created=1.5))),
    Refusal("created_bool", 400, "not_an_event", lambda: _signed_doc(event_doc(created=True))),
    Refusal("no_created", 400, "not_an_event", lambda: _signed_doc(event_doc(created=_DROP))),
    Refusal("object_not_event", 400, "not_an_event",
            lambda: _signed_doc(event_doc(object="charge"))),
    Refusal("no_object", 400, "not_an_event", lambda: _signed_doc(event_doc(object=_DROP))),
    Refusal("too_large_declared", 413, "too_large", _oversized_declared),
    Refusal("too_large_chunked", 413, "too_large", _oversized_chunked),
    Refusal("text_plain", 415, "unsupported_media_type",
            lambda: _signed(make_event(), **{"Content-Type": "text/plain"})),
    Refusal("form_encoded", 415, "unsupported_media_type",
            lambda: _signed(make_event(), **{"Content-Type": "application/x-www-form-urlencoded"})),
]


def assert_refused(response: httpx.Response, refusal: Refusal) -> None:
    assert (response.status_code, response.json()["error"]["code"]) == (refusal.status,
                                                                         refusal.code), response.text
    assert response.json()["error"]["message"]
    assert SECRET not in response.text


def assert_nothing_stored(inbox) -> None:
    stats = inbox.stats()
    assert inbox.list(limit=1000) == []
    assert {k: stats[k] for k in ("received", "unique", "duplicates_cache", "duplicates_durable",
                                  "pending")} == dict.fromkeys(
        ("received", "unique", "duplicates_cache", "duplicates_durable", "pending"), 0)


def test_every_refusal_gets_its_status_and_code_and_nothing_is_stored(
        settings: Settings) -> None:
    """In-process, one case after another on one app; every mismatch is reported at once."""
    app = App(settings, workers=0)
    app.start()  # the test reads the store after the app's lifespan

    async def scenario() -> list[tuple[Refusal, httpx.Response]]:
        answers = []
        async with asgi_client(app) as client:
            for refusal in REFUSALS:
                body, headers = refusal.build()
                if not isinstance(body, bytes):  # the ASGI transport wants an async stream
                    chunks = list(body)

                    async def stream(chunks: list[bytes] = chunks) -> Iterator[bytes]:
                        for chunk in chunks:
                            yield chunk

                    body = stream()
                answers.append((refusal, await client.post("/webhooks/stripe", content=body,
                                                           headers=headers)))
        await app.shutdown()
        return answers

    wrong = []
    for refusal, response in run_async(scenario):
        try:
            assert_refused(response, refusal)
        except (AssertionError, ValueError) as exc:
            wrong.append(f"{refusal.name}: {exc}")
    assert wrong == []
    assert_nothing_stored(app.inbox)


def test_body_at_the_size_limit_is_read_and_one_byte_more_is_refused(settings: Settings) -> None:
    app = App(settings, workers=0)
    app.start()  # the test reads the store after the app's lifespan
    template = make_event("charge.succeeded", obj={"id": "ch_1", "object": "charge", "pad": ""})
    at_limit = template.replace(b'"pad":""', b'"pad":"' + b"x" * (LIMIT - len(template)) + b'"')
    over = at_limit.replace(b'"pad":"', b'"pad":"y', 1)
    assert (len(at_limit), len(over)) == (LIMIT, LIMIT + 1)

    async def scenario() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            answers = [await post_async(client, over), await post_async(client, at_limit)]
        await app.shutdown()
        return answers

    refused, accepted = run_async(scenario)
    assert (refused.status_code, refused.json()["error"]["code"]) == (413, "too_large")
    assert accepted.json() == {"id": event_id_of(at_limit), "status": "accepted"}
    assert app.inbox.get(event_id_of(at_limit)).body == at_limit


def test_over_http_refusals_store_nothing_then_a_valid_event_is_accepted_once(
        database_url: str) -> None:
    """Every refusal over a real socket, then the store is empty (I6); then one valid event is
    accepted, its copies are duplicates from the seen tier, and `ichido stats --json` counts
    them; the secret never shows in a response or in the server's output."""
    server = start_server(database_url, workers=0)
    wrong = []
    body = make_event("payment_intent.succeeded")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for refusal in REFUSALS:
                sent, headers = refusal.build()
                response = client.post("/webhooks/stripe", content=sent, headers=headers)
                try:
                    assert_refused(response, refusal)
                except (AssertionError, ValueError) as exc:
                    wrong.append(f"{refusal.name}: {exc}")
            health = client.get("/healthz")
            inbox = open_store(database_url)
            stats_after_refusals, listed = inbox.stats(), inbox.list()

            first = server.post(body, client)
            second = server.post(body, client)
            # a re-serialised copy with other whitespace: the same event, judged by its id
            third = server.post(orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2),
                                client)
    finally:
        server.stop()
    assert wrong == []
    assert health.status_code == 200 and health.json() == {"status": "ok", "storage": "ok"}
    assert listed == []
    assert {k: stats_after_refusals[k] for k in ("received", "unique", "pending")} == {
        "received": 0, "unique": 0, "pending": 0}

    event_id = event_id_of(body)
    assert first.status_code == 200 and first.json() == {"id": event_id, "status": "accepted"}
    assert second.status_code == third.status_code == 200
    copies = [second.json(), third.json()]
    assert [(c["id"], c["status"]) for c in copies] == [(event_id, "duplicate")] * 2
    answered = [c["tier"] for c in copies]
    assert tiers_match(answered, ["cache", "cache"],
                       remote_tier=bool(os.environ.get("ICHIDO_REDIS_URL"))), answered
    stats = cli_json("stats", database_url=database_url)  # as an operator would look
    assert (stats["received"], stats["unique"], stats["duplicates_cache"],
            stats["duplicates_durable"]) == (3, 1, answered.count("cache"),
                                              answered.count("durable"))
    assert [r.id for r in inbox.list()] == [event_id]

    output = server.output()
    for text in (output, first.text, second.text):
        assert SECRET not in text
        assert SECRET.removeprefix("whsec_") not in text


def test_serve_without_a_secret_refuses_to_start(tmp_path) -> None:
    done = run_cli("serve", "--port", str(free_port()), "--workers", "0",
                   database_url=f"sqlite:///{tmp_path / 'ichido.db'}", timeout=60)
    assert done.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET" in done.stderr
    assert "receiving on" not in done.stderr


def test_serve_refuses_a_secret_that_is_not_a_signing_secret(tmp_path) -> None:
    done = run_cli("serve", "--port", str(free_port()), "--workers", "0",
                   "--secret", "sk_test_not_a_webhook_secret",
                   database_url=f"sqlite:///{tmp_path / 'ichido.db'}")
    assert done.returncode != 0
    assert "whsec_" in done.stderr
    assert "sk_test_not_a_webhook_secret" not in done.stderr + done.stdout


def test_app_without_a_secret_accepts_nothing(database_url: str) -> None:
    """Mounted without ``ichido serve`` (no start-up check), the app still accepts nothing."""
    app = App(Settings(database_url=database_url), workers=0)
    app.start()  # the test reads the store after the app's lifespan
    body = make_event()

    async def scenario() -> httpx.Response:
        async with asgi_client(app) as client:
            return await post_async(client, body,
                                    headers={**signed_headers(body, secrets=["whsec_guess"])})

    response = run_async(scenario)
    assert response.status_code >= 400
    assert app.inbox.get(event_id_of(body)) is None


def test_either_secret_is_accepted_while_rolling(database_url: str) -> None:
    old, new = "whsec_old_secret_1", "whsec_new_secret_2"
    app = App(Settings(database_url=database_url, webhook_secrets=(old, new)), workers=0)
    app.start()  # the test reads the store after the app's lifespan
    signed_old, signed_new, signed_both, signed_other = (make_event() for _ in range(4))

    async def scenario() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            answers = [
                await post_async(client, signed_old, headers=signed_headers(signed_old, [old])),
                await post_async(client, signed_new, headers=signed_headers(signed_new, [new])),
                await post_async(client, signed_both,
                                 headers=signed_headers(signed_both, [old, new])),
                await post_async(client, signed_other,
                                 headers=signed_headers(signed_other, ["whsec_third"])),
            ]
        await app.shutdown()
        return answers

    answers = run_async(scenario)
    assert [a.status_code for a in answers] == [200, 200, 200, 400]
    assert [a.json().get("status") for a in answers[:3]] == ["accepted"] * 3
    assert answers[3].json()["error"]["code"] == "bad_signature"


def test_receiver_never_runs_handlers(settings: Settings) -> None:
    """Handlers run in the worker, never in the request (a slow handler would time Stripe out)."""
    app = in_process_app(settings)
    app.on("payment_intent.succeeded")(record_effect)
    body = make_event("payment_intent.succeeded")

    async def scenario() -> httpx.Response:
        async with asgi_client(app) as client:
            response = await post_async(client, body)
        await app.shutdown()
        return response

    assert run_async(scenario).json()["status"] == "accepted"
    assert effect_counts(app.database) == {}
    assert app.inbox.get(event_id_of(body)).status == "pending"
    app.worker().drain()
    assert effect_counts(app.database) == {event_id_of(body): 1}


def test_stored_body_is_kept_byte_for_byte(settings: Settings) -> None:
    app = App(settings, workers=0)
    app.start()  # the test reads the store after the app's lifespan
    event_id = f"evt_bytes_{uuid.uuid4().hex}"
    body = (b'{ "type":"charge.succeeded", "id":"%s", "object":"event",\n "created":1 }'
            % event_id.encode())

    async def scenario() -> httpx.Response:
        async with asgi_client(app) as client:
            response = await post_async(client, body)
        await app.shutdown()
        return response

    assert run_async(scenario).json() == {"id": event_id, "status": "accepted"}
    record = app.inbox.get(event_id)
    assert (record.body, record.type, record.created) == (body, "charge.succeeded", 1)


def test_signature_is_checked_on_the_raw_body(settings: Settings) -> None:
    """Re-serialising the JSON (as a framework might) must not verify."""
    body = make_event()
    headers = signed_headers(body)
    reserialised = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    assert reserialised != body
    app = App(settings, workers=0)
    app.start()  # the test reads the store after the app's lifespan

    async def scenario() -> httpx.Response:
        async with asgi_client(app) as client:
            return await post_async(client, reserialised, headers=headers)

    assert run_async(scenario).json()["error"]["code"] == "bad_signature"
    assert signature.verify(body, headers["Stripe-Signature"], [SECRET])


def test_settings_never_show_their_secrets_in_repr() -> None:
    """A traceback with locals (rich, Sentry) or a logged config must not carry them. (Found as a
    bug: Settings was a plain dataclass repr.)"""
    settings = Settings(database_url="postgresql://ichido:db-pass-123@db/ichido",
                        redis_url="redis://:redis-pass-456@cache:6379/0",
                        webhook_secrets=(SECRET,))
    shown = repr(settings) + str(settings)
    for secret in (SECRET, "db-pass-123", "redis-pass-456"):
        assert secret not in shown
