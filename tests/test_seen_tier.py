"""I3 (docs/invariants.md): the seen tier is a hint. Flushing it, restarting it, outliving its
TTL or its size never loses an event and never applies one twice; both tiers count what they
caught."""

from __future__ import annotations

import os
import uuid
from typing import Sequence

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

import ichido.app as app_module
from ichido import App
from ichido.config import Settings
from ichido.errors import StorageUnavailable
from ichido.seen.memory import MemorySeenCache
from tests.support import (
    asgi_client,
    effect_counts,
    event_id_of,
    forget_seen,
    in_process_app,
    make_event,
    open_store,
    post_async,
    record_effect,
    run_async,
    start_server,
    tiers_match,
    wait_until,
)

COUNTS = ("received", "unique", "duplicates_cache", "duplicates_durable")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_app(settings: Settings, cache: MemorySeenCache | None = None,
            monkeypatch: pytest.MonkeyPatch | None = None) -> App:
    if cache is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(app_module, "open_seen", lambda *args, **kwargs: cache)
    app = in_process_app(settings)
    app.on("payment_intent.succeeded")(record_effect)
    return app


def tiers(answers: Sequence[httpx.Response]) -> list[str]:
    out = []
    for answer in answers:
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        out.append(doc["status"] if doc["status"] == "accepted" else doc["tier"])
    return out


def counts(app: App) -> dict[str, int]:
    stats = app.inbox.stats()
    return {name: stats[name] for name in COUNTS}


def tallies(answers: Sequence[str]) -> dict[str, int]:
    """The counts the store must show for these answers."""
    return {"received": len(answers), "unique": answers.count("accepted"),
            "duplicates_cache": answers.count("cache"),
            "duplicates_durable": answers.count("durable")}


def play(app: App, steps: Sequence[bytes | str]) -> list[str]:
    """Post each body in turn; the string "flush" makes the seen tier forget them all."""
    ids = sorted({event_id_of(step) for step in steps if step != "flush"})

    async def scenario() -> list[httpx.Response]:
        answers = []
        async with asgi_client(app) as client:
            for step in steps:
                if step == "flush":
                    forget_seen(app.seen, ids)
                else:
                    answers.append(await post_async(client, step))
        await app.shutdown()
        return answers

    return tiers(run_async(scenario))


def test_duplicate_after_cache_flush_is_caught_durably(settings: Settings) -> None:
    app = new_app(settings)
    bodies = [make_event("payment_intent.succeeded") for _ in range(6)]
    a, b, c, d, e, f = bodies
    stream = [a, b, a, c, b, "flush", a, c, a, d, "flush", d, e, b, f, e, "flush", f, a]
    answers = play(app, stream)
    assert tiers_match(answers, [
        "accepted", "accepted", "cache", "accepted", "cache",  # before the first flush
        "durable", "durable", "cache", "accepted",
        "durable", "accepted", "durable", "accepted", "cache",
        "durable", "durable",  # a was learned before the second flush: gone from the tier too
    ], remote_tier=bool(settings.redis_url)), answers
    assert counts(app) == tallies(answers)
    app.worker().drain()
    assert effect_counts(app.database) == {event_id_of(body): 1 for body in bodies}
    assert app.inbox.stats()["processed"] == 6


@hypothesis_settings(max_examples=10, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(st.lists(st.one_of(st.integers(min_value=0, max_value=6), st.just("flush")),
                min_size=1, max_size=30))
def test_any_stream_with_flushes_applies_each_event_once(settings: Settings,
                                                         plan: list[int | str]) -> None:
    """Model: a copy is 'cache' if the tier holds its id, else 'durable' if stored before, else
    'accepted'; the tier learns every id it has stored or found stored, and forgets on a flush."""
    prefix = uuid.uuid4().hex[:8]  # examples share the store: give each its own ids
    bodies = {k: make_event("payment_intent.succeeded", id=f"evt_{prefix}_{k}") for k in range(7)}
    app = new_app(settings)
    before = counts(app)
    stored: set[int] = set()
    cached: set[int] = set()
    expected = []
    for step in plan:
        if step == "flush":
            cached.clear()
            continue
        expected.append("cache" if step in cached else "durable" if step in stored
                        else "accepted")
        stored.add(step)
        cached.add(step)

    answers = play(app, [step if step == "flush" else bodies[step] for step in plan])
    assert tiers_match(answers, expected, remote_tier=bool(settings.redis_url)), answers
    after = counts(app)
    assert {k: after[k] - before[k] for k in COUNTS} == tallies(answers)
    assert tallies(answers)["unique"] == len(stored)
    app.worker().drain()
    effects = effect_counts(app.database)
    assert {k: effects[event_id_of(bodies[k])] for k in range(7)} == {
        k: int(k in stored) for k in range(7)}


def test_id_past_its_ttl_is_forgotten_by_the_cache_but_caught_durably(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    cache = MemorySeenCache(ttl_seconds=60, max_entries=100, clock=clock)
    app = new_app(settings, cache, monkeypatch)
    body = make_event("payment_intent.succeeded")

    async def scenario() -> list[httpx.Response]:
        answers = []
        async with asgi_client(app) as client:
            answers.append(await post_async(client, body))
            clock.now += 59
            answers.append(await post_async(client, body))  # within the TTL
            clock.now += 61
            answers.append(await post_async(client, body))  # the TTL has lapsed
            answers.append(await post_async(client, body))  # learned again from the inbox
        await app.shutdown()
        return answers

    assert tiers(run_async(scenario)) == ["accepted", "cache", "durable", "cache"]
    assert counts(app) == {"received": 4, "unique": 1, "duplicates_cache": 2,
                           "duplicates_durable": 1}
    app.worker().drain()
    assert effect_counts(app.database) == {event_id_of(body): 1}


def test_ids_evicted_for_size_are_caught_durably(settings: Settings,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = MemorySeenCache(ttl_seconds=3600, max_entries=3)
    app = new_app(settings, cache, monkeypatch)
    bodies = [make_event("payment_intent.succeeded") for _ in range(5)]
    sizes = []

    async def scenario() -> list[httpx.Response]:
        answers = []
        async with asgi_client(app) as client:
            for body in bodies:
                answers.append(await post_async(client, body))
                sizes.append(len(cache))
            answers.append(await post_async(client, bodies[0]))  # evicted long ago
            answers.append(await post_async(client, bodies[-1]))  # still remembered
        await app.shutdown()
        return answers

    assert tiers(run_async(scenario)) == ["accepted"] * 5 + ["durable", "cache"]
    assert max(sizes) <= 3
    app.worker().drain()
    assert effect_counts(app.database) == {event_id_of(body): 1 for body in bodies}


@pytest.mark.parametrize("failure", [StorageUnavailable("disk full"), OSError("I/O error")],
                         ids=["storage_unavailable", "unexpected_error"])
def test_cache_learns_an_id_only_after_its_durable_write(settings: Settings,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         failure: Exception) -> None:
    app = new_app(settings)
    body = make_event("payment_intent.succeeded")
    event_id = event_id_of(body)
    inbox = app.inbox

    async def broken_accept(*args, **kwargs):
        raise failure

    async def scenario() -> list[httpx.Response]:
        answers = []
        async with asgi_client(app) as client:
            with monkeypatch.context() as patch:
                patch.setattr(inbox, "accept_async", broken_accept)
                answers.append(await post_async(client, body))
                answers.append(await post_async(client, body))  # still unknown: fails again
                assert app.seen.seen([event_id]) == set()
            answers.append(await post_async(client, body))
            answers.append(await post_async(client, body))
        await app.shutdown()
        return answers

    first, second, third, fourth = run_async(scenario)
    for answer in (first, second):
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "storage_unavailable"
    assert third.json() == {"id": event_id, "status": "accepted"}
    assert tiers_match(tiers([fourth]), ["cache"], remote_tier=bool(settings.redis_url))
    app.worker().drain()
    assert effect_counts(app.database) == {event_id: 1}


def test_an_id_stored_by_another_store_sharing_the_tier_is_still_stored(
        settings: Settings, tmp_path) -> None:
    """Two deployments (say staging and production endpoints of one Stripe account, so the same
    event ids) configured with one Redis: the tier may only short-circuit ids durable in THIS
    store, or the second deployment answers 200 'duplicate' for events it never stored. (Found
    as a bug: Redis keys were not scoped by store.)"""
    neighbour = in_process_app(Settings(database_url=f"sqlite:///{tmp_path / 'neighbour.db'}",
                                        redis_url=settings.redis_url,
                                        webhook_secrets=settings.webhook_secrets))
    app = new_app(settings)
    body = make_event("payment_intent.succeeded")
    event_id = event_id_of(body)
    assert play(neighbour, [body]) == ["accepted"]
    assert play(app, [body]) == ["accepted"]
    assert app.inbox.get(event_id) is not None
    app.worker().drain()
    assert effect_counts(app.database) == {event_id: 1}


# -- the in-process tier itself ------------------------------------------------------------------


def test_memory_cache_forgets_at_its_ttl() -> None:
    clock = Clock()
    cache = MemorySeenCache(ttl_seconds=10, max_entries=10, clock=clock)
    cache.add(["evt_a"])
    clock.now += 5
    cache.add(["evt_b"])
    assert cache.seen(["evt_a", "evt_b", "evt_c"]) == {"evt_a", "evt_b"}
    clock.now += 5  # evt_a's TTL is over
    assert cache.seen(["evt_a", "evt_b"]) == {"evt_b"}
    cache.add(["evt_a"])  # re-learned: a fresh TTL, and now the newest entry
    clock.now += 5
    assert cache.seen(["evt_a", "evt_b"]) == {"evt_a"}
    cache.clear()
    assert cache.seen(["evt_a"]) == set() and len(cache) == 0


@hypothesis_settings(max_examples=200, deadline=None)
@given(max_entries=st.integers(min_value=1, max_value=5),
       ops=st.lists(st.one_of(
           st.tuples(st.just("add"), st.lists(st.integers(0, 9), min_size=1, max_size=4)),
           st.tuples(st.just("tick"), st.integers(0, 15)),
           st.tuples(st.just("look"), st.lists(st.integers(0, 9), max_size=10)),
       ), max_size=40))
def test_memory_cache_is_bounded_and_never_invents_ids(max_entries: int, ops: list) -> None:
    ttl = 10
    clock = Clock()
    cache = MemorySeenCache(ttl_seconds=ttl, max_entries=max_entries, clock=clock)
    added_at: dict[str, float] = {}
    recent: list[str] = []  # distinct ids, most recently added last
    for op, arg in ops:
        if op == "add":
            ids = [f"evt_{i}" for i in arg]
            cache.add(ids)
            for event_id in ids:
                added_at[event_id] = clock.now
                if event_id in recent:
                    recent.remove(event_id)
                recent.append(event_id)
        elif op == "tick":
            clock.now += arg
        else:
            ids = [f"evt_{i}" for i in arg]
            found = cache.seen(ids)
            assert found <= set(ids)
            for event_id in found:  # only ids added, and still within their TTL
                assert clock.now - added_at[event_id] < ttl
            for event_id in recent[-max_entries:]:  # the newest, if fresh, are remembered
                if event_id in ids and clock.now - added_at[event_id] < ttl:
                    assert event_id in found
        assert len(cache) <= max_entries


# -- over real HTTP: a fresh process has an empty tier ---------------------------------------------


def test_restarted_receiver_catches_duplicates_durably(database_url: str) -> None:
    bodies = [make_event("payment_intent.succeeded") for _ in range(8)]
    remote = bool(os.environ.get("ICHIDO_REDIS_URL"))
    first = start_server(database_url, workers=1)
    try:
        with httpx.Client(timeout=30) as client:
            before = tiers([first.post(body, client) for body in bodies])
            again = tiers([first.post(body, client) for body in bodies])
    finally:
        first.stop()
    # A new process starts with an empty in-process tier; a shared (Redis) tier is flushed of
    # these ids, as an operator, an eviction or a lapsed TTL would.
    offline = App(Settings.from_env(database_url=database_url), workers=0)
    offline.start()
    forget_seen(offline.seen, [event_id_of(body) for body in bodies])
    offline.close()
    second = start_server(database_url, workers=1)
    try:
        with httpx.Client(timeout=30) as client:
            after = tiers([second.post(body, client) for body in bodies])
            last = tiers([second.post(body, client) for body in bodies[:2]])
        inbox = open_store(database_url)
        wait_until(lambda: inbox.stats()["processed"] == 8, message="all 8 processed")
    finally:
        second.stop()
    answers = before + again + after + last
    assert tiers_match(answers, ["accepted"] * 8 + ["cache"] * 8 + ["durable"] * 8
                       + ["cache"] * 2, remote_tier=remote), answers
    stats = inbox.stats()
    assert {name: stats[name] for name in COUNTS} == tallies(answers)
    assert stats["received"] == (stats["unique"] + stats["duplicates_cache"]
                                 + stats["duplicates_durable"])
    assert effect_counts(inbox) == {event_id_of(body): 1 for body in bodies}
