"""Faults of the seen tier (Redis) under real ``ichido serve`` processes on PostgreSQL (I3,
docs/invariants.md: the cache is a hint).

- Redis flushed mid-stream: every later duplicate is caught by the durable tier and the counts
  show the duplicates moving from ``duplicates_cache`` to ``duplicates_durable``.
- Redis down: receivers carry on with the durable tier alone, no error reaches a sender.

Each test has a redis-server of its own (``ichido.testing.servers.RedisServer``), so its flush and its
outage reach nobody else's keys.
"""

from __future__ import annotations

import threading
from typing import Iterator

import httpx
import pytest

from tests.support import (
    RedisServer,
    ServerProcess,
    answers_of,
    cli_json,
    deliver,
    effect_counts,
    event_id_of,
    finished,
    make_event,
    open_store,
    redis_client,
    redis_up,
    signed_headers,
    stop_all,
    tier,
    wait_until,
)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


# -- Redis flushed mid-stream ------------------------------------------------------------------

def test_redis_flush_mid_stream_moves_every_later_duplicate_to_the_durable_tier(
        fault_db: str, private_redis: RedisServer) -> None:
    flusher = redis_client(private_redis.url)
    env = {"ICHIDO_REDIS_URL": private_redis.url}
    receivers = [ServerProcess(fault_db, workers=1, env=env) for _ in range(2)]
    first = [make_event("payment_intent.succeeded") for _ in range(60)]
    stream = [make_event("charge.succeeded") for _ in range(200)]
    streamed: list[tuple[int, dict]] = []
    stream_errors: list[BaseException] = []
    half_streamed = threading.Event()

    def send_stream() -> None:  # new events, each once, alternating receivers, across the flush
        try:
            with httpx.Client(timeout=60) as client:
                for index, body in enumerate(stream):
                    response = deliver(receivers[index % 2].url, body, client)
                    streamed.append((response.status_code, response.json()))
                    if index == len(stream) // 4:
                        half_streamed.set()
        except BaseException as exc:
            stream_errors.append(exc)
            half_streamed.set()

    try:
        with httpx.Client(timeout=60) as client:
            stored = answers_of(receivers[0].url, first, client)
            assert [(s, a["status"]) for s, a in stored] == [(200, "accepted")] * len(first)
            # The other receiver shares the tier: its copies are caught by Redis (a slow Redis
            # reply may mute it for a moment: then by the inbox; never accepted twice).
            before = [tier(a) for s, a in answers_of(receivers[1].url, first, client)]
            assert set(before) <= {"cache", "durable"}, before
            assert before.count("cache") > 0, "the Redis tier caught nothing before the flush"
            s1 = cli_json("stats", database_url=fault_db)

            sender = threading.Thread(target=send_stream)
            sender.start()
            assert half_streamed.wait(60), "the stream did not start"
            private_redis.flushall()  # mid-stream: the stream's requests are in flight around it
            # (The stream, still running, teaches the tier its own new ids again meanwhile.)
            first_ids = {event_id_of(body) for body in first}
            assert not [k for k in flusher.keys("*") if k.decode().rsplit(":", 1)[1] in first_ids]
            # Stripe resends every earlier event: only the durable tier can know them now.
            after = [answers_of(receivers[i % 2].url, [body], client)[0]
                     for i, body in enumerate(first)]
            s2 = cli_json("stats", database_url=fault_db)
            sender.join(120)
            assert not sender.is_alive() and not stream_errors, stream_errors
            # Caught durably, the ids are in the tier again: the next copies come from Redis.
            refilled = [tier(a) for _, a in answers_of(receivers[1].url, first, client)]
            s3 = cli_json("stats", database_url=fault_db)

        assert [s for s, _ in after] == [200] * len(first)
        assert [tier(a) for _, a in after] == ["durable"] * len(first)
        assert (s2["duplicates_cache"] - s1["duplicates_cache"],
                s2["duplicates_durable"] - s1["duplicates_durable"]) == (0, len(first)), (s1, s2)
        assert set(refilled) <= {"cache", "durable"} and refilled.count("cache") > 0, refilled
        assert s3["duplicates_cache"] - s2["duplicates_cache"] == refilled.count("cache")
        assert [(s, a["status"]) for s, a in streamed] == [(200, "accepted")] * len(stream)

        inbox = open_store(fault_db)
        ids = [event_id_of(body) for body in (*first, *stream)]
        wait_until(lambda: finished(inbox, len(ids)), message="every event processed")
        assert effect_counts(inbox) == dict.fromkeys(ids, 1)
        stats = inbox.stats()
        assert stats["unique"] == len(ids)
        assert stats["received"] == len(stream) + 4 * len(first)
        assert stats["received"] == (stats["unique"] + stats["duplicates_cache"]
                                     + stats["duplicates_durable"])
        inbox.close()
    finally:
        stop_all(*receivers)
        flusher.close()


# -- Redis down ---------------------------------------------------------------------------------

def test_redis_down_receivers_carry_on_with_the_durable_tier_alone(
        fault_db: str, private_redis: RedisServer) -> None:
    env = {"ICHIDO_REDIS_URL": private_redis.url}
    receivers = [ServerProcess(fault_db, workers=1, env=env) for _ in range(2)]
    early = [make_event("payment_intent.succeeded") for _ in range(20)]
    during = [make_event("charge.succeeded") for _ in range(40)]
    answers: dict[str, list[str]] = {}
    try:
        with httpx.Client(timeout=60) as client:
            for body in early:  # Redis up: the second receiver's copy is a cache hit
                answers[event_id_of(body)] = [
                    tier(a) for _, a in (answers_of(receivers[0].url, [body], client)
                                         + answers_of(receivers[1].url, [body], client))]
            assert any(a[1] == "cache" for a in answers.values()), answers
            private_redis.stop()
            try:
                statuses = []
                for body in during:
                    pair = [client.post(f"{r.url}/webhooks/stripe", content=body,
                                        headers=signed_headers(body)) for r in receivers]
                    statuses += [response.status_code for response in pair]
                    answers[event_id_of(body)] = [tier(r.json()) for r in pair]
                late_copies = [client.post(f"{receivers[1].url}/webhooks/stripe", content=body,
                                           headers=signed_headers(body)) for body in early]
                statuses += [response.status_code for response in late_copies]
                late = [tier(response.json()) for response in late_copies]
                assert not redis_up(private_redis.url)
            finally:
                private_redis.start()
            # Redis is back (and empty): a durable catch teaches it the id again, after the
            # receiver's short mute, so copies come from the cache once more.
            comeback = during[0]
            wait_until(lambda: tier(answers_of(receivers[0].url, [comeback], client)[0][1])
                       == "cache", timeout=60, interval=0.3, message="the cache in use again")
    finally:
        stop_all(*receivers)

    assert statuses == [200] * len(statuses)  # not one error reached a sender
    for body in during:
        assert answers[event_id_of(body)] == ["accepted", "durable"]
    assert late == ["durable"] * len(early)
    for receiver in receivers:
        log = receiver.output()
        assert "Traceback" not in log and "ERROR" not in log, log
    inbox = open_store(fault_db)
    ids = [event_id_of(body) for body in (*early, *during)]
    wait_until(lambda: finished(inbox, len(ids)), message="every event processed")
    assert effect_counts(inbox) == dict.fromkeys(ids, 1)
    inbox.close()
