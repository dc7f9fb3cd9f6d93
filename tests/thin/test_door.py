"""Thin notifications at the endpoint: the same signature scheme, secrets and reason codes as
snapshots; stored durably before the 200, and deduplicated on their id by both tiers."""

from __future__ import annotations

import httpx
import orjson

from ichido.config import Settings
from tests.support import (
    SECRET,
    asgi_client,
    forget_seen,
    in_process_app,
    make_event,
    open_store,
    post_async,
    run_async,
    signed_headers,
    tiers_match,
)
from tests.thin.support import make_thin


def test_thin_notifications_are_stored_before_the_200_and_deduplicated_in_both_tiers(
        settings: Settings) -> None:
    app = in_process_app(settings)
    thin = make_thin("v1.payment_intent.succeeded", snapshot_event="evt_1Snapshot")
    twin = make_event("payment_intent.succeeded", id="evt_1Snapshot")
    thin_id = orjson.loads(thin)["id"]

    async def scenario() -> list[httpx.Response]:
        answers = []
        async with asgi_client(app) as client:
            answers.append(await post_async(client, thin))
            answers.append(await post_async(client, thin))  # the seen tier's
            forget_seen(app.seen, [thin_id])
            answers.append(await post_async(client, thin))  # the inbox's unique id
            answers.append(await post_async(client, twin))  # its snapshot: another id
        await app.shutdown()
        return answers

    try:
        first, cached, durable, snapshot = run_async(scenario)
        assert first.status_code == 200 and first.json() == {"id": thin_id, "status": "accepted"}
        tiers = [cached.json()["tier"], durable.json()["tier"]]
        assert tiers_match(tiers, ["cache", "durable"], remote_tier=bool(settings.redis_url))
        assert snapshot.json() == {"id": "evt_1Snapshot", "status": "accepted"}
        store = open_store(settings.database_url)
        try:
            stored = store.get(thin_id)
            assert stored is not None and stored.body == thin  # byte for byte
            assert (stored.type, stored.created, stored.object_id) == (
                "v1.payment_intent.succeeded", 1_790_848_800, orjson.loads(thin)[
                    "related_object"]["id"])
            stats = store.stats()
            assert (stats["received"], stats["unique"]) == (4, 2)
            assert stats["duplicates_cache"] + stats["duplicates_durable"] == 2
        finally:
            store.close()
    finally:
        app.close()


def test_thin_notifications_are_refused_with_the_snapshot_reason_codes(
        settings: Settings) -> None:
    app = in_process_app(settings)
    thin = make_thin()
    bad = {**signed_headers(thin), "Stripe-Signature": signed_headers(thin, ["whsec_other_secret_1"])[
        "Stripe-Signature"]}
    stale = signed_headers(thin, timestamp=1_000_000_000)
    unread = orjson.dumps({**orjson.loads(thin), "related_object": None})

    async def scenario() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            answers = [await post_async(client, thin, headers=bad),
                       await post_async(client, thin, headers=stale),
                       await post_async(client, unread),
                       await post_async(client, thin, headers={"Content-Type": "application/json"})]
        await app.shutdown()
        return answers

    try:
        answers = run_async(scenario)
        assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [
            (400, "bad_signature"), (400, "stale_timestamp"), (400, "not_an_event"),
            (400, "missing_signature")]
        assert all(SECRET not in a.text for a in answers)
        assert app.inbox.stats()["received"] == 0
    finally:
        app.close()
