"""The worker: exactly-once effects (I2) and one bad event stops nothing (I5; both in
docs/invariants.md).

In-process: events are stored with ``inbox.accept`` (or through the ASGI receiver) and the worker
is driven step by step with ``run_once``, so every interleaving here is deterministic.
"""

from __future__ import annotations

import asyncio

from ichido import App, Event
from ichido.config import Settings
from ichido.event import parse_delivery
from ichido.worker import Worker
from tests.support import (
    asgi_client,
    effect_counts,
    event_id_of,
    forget_seen,
    in_process_app,
    make_event,
    post_async,
    record_effect,
    run_async,
    run_cli,
    settle_intake,
    tiers_match,
    wait_until,
)


def new_app(settings: Settings, **changes: object) -> App:
    return in_process_app(settings, **changes)


def store(app: App, *bodies: bytes) -> list[str]:
    """Accept as the receiver does, then settle SQLite's intake as a worker's claim would, so
    that tests can look at (and age) the rows in ``ichido_events`` before any claim."""
    app.inbox.accept([parse_delivery(body) for body in bodies])
    settle_intake(app)
    return [event_id_of(body) for body in bodies]



def drive(worker: Worker, until, *, timeout: float = 60.0, what: str = "the worker") -> None:
    """Run the worker until ``until()`` holds (retries wait out their short backoff)."""

    def step() -> bool:
        worker.run_once()
        return bool(until())

    wait_until(step, timeout=timeout, interval=0.005, message=what)


def status_of(app: App, event_id: str) -> str:
    return app.inbox.get(event_id).status


# -- I2: retries never repeat an effect ---------------------------------------------------------


def test_handler_failing_n_times_then_succeeding_applies_once(settings: Settings) -> None:
    failures_planned = 3
    app = new_app(settings)

    @app.on("invoice.paid")
    def flaky(event: Event, tx) -> None:
        record_effect(event, tx)  # written first: a failed attempt must leave no row behind
        if event.attempt <= failures_planned:
            raise RuntimeError(f"planned failure on attempt {event.attempt}")

    [event_id] = store(app, make_event("invoice.paid"))
    drive(app.worker(), lambda: status_of(app, event_id) == "processed")

    record = app.inbox.get(event_id)
    assert effect_counts(app.database) == {event_id: 1}
    assert [attempt for attempt, _, _ in record.failures] == [1, 2, 3]
    assert all("planned failure" in error for _, _, error in record.failures)
    assert record.attempts == failures_planned + 1
    assert record.finished_at is not None and record.next_attempt_at is None
    stats = app.inbox.stats()
    assert (stats["processed"], stats["retrying"], stats["dead"]) == (1, 0, 0)


def test_always_failing_handler_ends_dead_with_its_error(settings: Settings) -> None:
    app = new_app(settings, max_attempts=3)

    @app.on("test.always_fails")
    def broken(event: Event, tx) -> None:
        record_effect(event, tx)
        raise ConnectionError("the downstream is broken")

    [event_id] = store(app, make_event("test.always_fails"))
    worker = app.worker()
    drive(worker, lambda: status_of(app, event_id) == "dead")

    record = app.inbox.get(event_id)
    assert record.attempts == 3
    assert [attempt for attempt, _, _ in record.failures] == [1, 2, 3]
    assert "ConnectionError: the downstream is broken" in record.last_error
    assert record.next_attempt_at is None
    assert effect_counts(app.database) == {}
    assert worker.run_once() == 0  # dead stays dead until replayed
    stats = app.inbox.stats()
    assert (stats["dead"], stats["processed"], stats["retrying"]) == (1, 0, 0)


def test_one_failing_event_does_not_hold_up_the_others(settings: Settings) -> None:
    app = new_app(settings, max_attempts=2, claim_batch=4)
    app.on("payment_intent.succeeded")(record_effect)

    @app.on("test.always_fails")
    def broken(event: Event, tx) -> None:
        record_effect(event, tx)  # written, then undone with the failure
        raise RuntimeError("poison")

    [bad] = store(app, make_event("test.always_fails"))
    good = store(app, *(make_event("payment_intent.succeeded") for _ in range(10)))
    drive(app.worker(), lambda: app.inbox.stats()["processed"] == 10
          and status_of(app, bad) == "dead")
    assert effect_counts(app.database) == {event_id: 1 for event_id in good}


def test_a_failing_event_in_a_claimed_batch_undoes_only_its_own_writes(
        settings: Settings) -> None:
    app = new_app(settings, claim_batch=16)
    app.on("payment_intent.succeeded")(record_effect)

    @app.on("invoice.paid")
    def half_done(event: Event, tx) -> None:
        record_effect(event, tx)
        raise RuntimeError("failed after writing")

    @app.on("charge.refunded")
    def bad_sql(event: Event, tx) -> None:
        record_effect(event, tx)
        tx.execute("INSERT INTO no_such_table (x) VALUES (?)", (1,))  # a database error

    good = store(app, *(make_event("payment_intent.succeeded") for _ in range(3)))
    failing = store(app, make_event("invoice.paid"), make_event("charge.refunded"))
    good += store(app, *(make_event("payment_intent.succeeded") for _ in range(3)))
    assert app.worker().run_once() == 8  # one batch held them all
    assert effect_counts(app.database) == dict.fromkeys(good, 1)
    assert {status_of(app, i) for i in good} == {"processed"}
    for event_id in failing:
        record = app.inbox.get(event_id)
        assert (record.status, len(record.failures)) == ("retrying", 1)
    assert "failed after writing" in app.inbox.get(failing[0]).last_error


def test_a_batch_with_one_stolen_claim_still_applies_each_event_once(settings: Settings) -> None:
    app = new_app(settings)
    app.on("charge.succeeded")(record_effect)
    ids = store(app, *(make_event("charge.succeeded") for _ in range(3)))
    slow, fast = app.worker("slow"), app.worker("fast")
    claims = slow.queue.claim(slow.name, 10, 0.0)  # a zero lease: lapsed at once
    assert len(claims) == 3
    [stolen] = wait_until(lambda: fast.queue.claim(fast.name, 1, 60.0), message="a take-over")

    slow.process_batch(claims)  # must not commit the stolen one; the others may go through
    assert effect_counts(app.database)[stolen.id] == 0
    assert app.inbox.get(stolen.id).status == "processing"
    fast.process(stolen)
    drive(app.worker("sweeper"), lambda: all(status_of(app, i) == "processed" for i in ids))
    assert effect_counts(app.database) == dict.fromkeys(ids, 1)


def test_redelivery_while_retrying_is_a_duplicate_and_the_worker_still_retries(
        settings: Settings) -> None:
    """dj-stripe #832: the stored-but-failing event must not be forgotten behind a 'duplicate'."""
    app = new_app(settings)

    @app.on("invoice.paid")
    def flaky(event: Event, tx) -> None:
        if event.attempt <= 2:
            raise RuntimeError(f"planned failure on attempt {event.attempt}")
        record_effect(event, tx)

    body = make_event("invoice.paid")
    event_id = event_id_of(body)
    worker = app.worker()

    async def scenario() -> list[dict]:
        answers = []
        async with asgi_client(app) as client:
            answers.append((await post_async(client, body)).json())
            assert await asyncio.to_thread(worker.run_once) == 1
            assert (await asyncio.to_thread(app.inbox.get, event_id)).status == "retrying"
            answers.append((await post_async(client, body)).json())  # seen tier
            await asyncio.to_thread(forget_seen, app.seen, [event_id])
            answers.append((await post_async(client, body)).json())  # durable tier
        await app.shutdown()
        return answers

    answers = run_async(scenario)
    assert [a["id"] for a in answers] == [event_id] * 3
    assert [a["status"] for a in answers] == ["accepted", "duplicate", "duplicate"]
    assert tiers_match(["accepted", answers[1]["tier"], answers[2]["tier"]],
                       ["accepted", "cache", "durable"], remote_tier=bool(settings.redis_url))
    assert status_of(app, event_id) == "retrying"  # the redeliveries did not reset or finish it
    assert effect_counts(app.database) == {}
    drive(app.worker(), lambda: status_of(app, event_id) == "processed")
    assert effect_counts(app.database) == {event_id: 1}
    assert len(app.inbox.get(event_id).failures) == 2
    stats = app.inbox.stats()
    by_cache = [a.get("tier") for a in answers].count("cache")
    assert (stats["received"], stats["unique"], stats["duplicates_cache"],
            stats["duplicates_durable"]) == (3, 1, by_cache, 2 - by_cache)


def test_dead_events_replayed_with_the_cli_after_the_fix_apply_once(settings: Settings) -> None:
    app = new_app(settings, max_attempts=2)
    downstream = {"fixed": False}

    @app.on("test.always_fails")
    def needs_fix(event: Event, tx) -> None:
        record_effect(event, tx)
        if not downstream["fixed"]:
            raise RuntimeError("the downstream is broken")

    one, two, three = store(app, *(make_event("test.always_fails") for _ in range(3)))
    worker = app.worker()
    drive(worker, lambda: app.inbox.stats()["dead"] == 3)
    downstream["fixed"] = True
    assert worker.drain() == 0  # fixing the cause alone does not revive dead letters

    single = run_cli("dlq", "retry", one, database_url=settings.database_url)
    assert single.returncode == 0, single.stderr
    assert "requeued 1" in single.stdout
    worker.drain()
    assert {i: status_of(app, i) for i in (one, two, three)} == {
        one: "processed", two: "dead", three: "dead"}

    everything = run_cli("dlq", "retry", "--all", database_url=settings.database_url)
    assert everything.returncode == 0, everything.stderr
    assert "requeued 2" in everything.stdout
    worker.drain()
    assert effect_counts(app.database) == {one: 1, two: 1, three: 1}
    record = app.inbox.get(one)
    assert record.status == "processed"
    assert [attempt for attempt, _, _ in record.failures] == [1, 2]  # history is kept
    stats = app.inbox.stats()
    assert (stats["processed"], stats["dead"]) == (3, 0)


def test_event_type_without_a_handler_is_ignored_and_counted(settings: Settings) -> None:
    app = new_app(settings)
    app.on("payment_intent.succeeded")(record_effect)
    [handled] = store(app, make_event("payment_intent.succeeded"))
    unhandled = store(app, make_event("customer.created"), make_event("customer.deleted"))
    app.worker().drain()
    assert status_of(app, handled) == "processed"
    assert [status_of(app, i) for i in unhandled] == ["ignored", "ignored"]
    assert effect_counts(app.database) == {handled: 1}
    stats = app.inbox.stats()
    assert (stats["processed"], stats["ignored"]) == (3, 2)


def test_wildcard_handler_receives_every_type(settings: Settings) -> None:
    app = new_app(settings)
    app.on("*")(record_effect)
    ids = store(app, make_event("customer.created"), make_event("charge.refunded"))
    app.worker().drain()
    assert [status_of(app, i) for i in ids] == ["processed", "processed"]
    assert effect_counts(app.database) == dict.fromkeys(ids, 1)


def test_handler_exception_rolls_back_its_own_writes(settings: Settings) -> None:
    app = new_app(settings, max_attempts=1)
    app.on("charge.succeeded")(record_effect)  # first handler: its write must go too

    @app.on("charge.succeeded")
    def writes_then_raises(event: Event, tx) -> None:
        tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
                   (event.id, "written-before-the-error", event.attempt))
        raise ValueError("after writing")

    [event_id] = store(app, make_event("charge.succeeded"))
    app.worker().drain()
    assert effect_counts(app.database) == {}
    record = app.inbox.get(event_id)
    assert record.status == "dead"
    assert record.finished_at is None  # the processed marker rolled back with the writes
    assert "ValueError: after writing" in record.last_error


def test_handler_gets_the_event_snapshot_and_attempt(settings: Settings) -> None:
    app = new_app(settings)
    seen: list[tuple] = []

    @app.on("payment_intent.succeeded")
    def look(event: Event, tx) -> None:
        seen.append((event.id, event.type, event.object["id"], event["data"]["object"]["object"],
                     event.attempt))

    body = make_event("payment_intent.succeeded", object_id="pi_snapshot_1")
    [event_id] = store(app, body)
    app.worker().drain()
    assert seen == [(event_id, "payment_intent.succeeded", "pi_snapshot_1", "payment_intent", 1)]
