"""Workers process a claimed batch in one transaction; a failure anywhere in it rolls the batch
back and its events go again one by one, so only the culprit fails."""

from __future__ import annotations

from contextlib import contextmanager


import ichido
from ichido.config import Settings
from ichido.event import parse_delivery
from ichido.queue.base import Status
from tests.support import make_event

SCHEMA = [("batch_test", 1, ["CREATE TABLE effects (event_id TEXT NOT NULL)"])]


def new_app(settings: Settings, **changes: object) -> ichido.App:
    app = ichido.App(settings.with_(claim_batch=50, **changes), workers=0, schema=SCHEMA)
    app.migrate()
    app.start()
    return app


def store(app: ichido.App, bodies: list[bytes]) -> list[str]:
    deliveries = [parse_delivery(body) for body in bodies]
    assert all(app.inbox.accept(deliveries))
    return [d.id for d in deliveries]


def effects(app: ichido.App) -> list[str]:
    with app.database.reading() as tx:
        return sorted(row[0] for row in tx.execute("SELECT event_id FROM effects").fetchall())


def test_one_failing_event_rolls_back_only_its_own_writes(settings: Settings) -> None:
    app = new_app(settings)
    poisoned: set[str] = set()

    @app.on("payment_intent.succeeded")
    def record(event: ichido.Event, tx) -> None:
        tx.execute("INSERT INTO effects (event_id) VALUES (?)", (event.id,))
        if event.id in poisoned:
            raise RuntimeError("downstream refused")

    ids = store(app, [make_event() for _ in range(10)])
    poisoned.add(ids[4])
    assert app.worker().run_once() == 10
    assert effects(app) == sorted(set(ids) - poisoned)  # its INSERT was undone, others kept
    statuses = {i: app.inbox.get(i).status for i in ids}
    assert statuses.pop(ids[4]) == Status.RETRYING
    assert set(statuses.values()) == {Status.PROCESSED}
    assert "downstream refused" in app.inbox.get(ids[4]).failures[0][2]


def test_a_batch_that_fails_as_a_whole_is_processed_one_by_one(settings: Settings) -> None:
    """A batch that fails at commit must not take its events down with it."""
    app = new_app(settings)
    calls: list[str] = []

    @app.on("payment_intent.succeeded")
    def record(event: ichido.Event, tx) -> None:
        calls.append(event.id)
        tx.execute("INSERT INTO effects (event_id) VALUES (?)", (event.id,))

    ids = store(app, [make_event() for _ in range(5)])
    original = app.queue.processing
    failures_left = [1]

    @contextmanager
    def processing_that_breaks_once(claims):  # the first whole batch fails before its commit
        with original(claims) as batch:
            yield batch
            if failures_left and len(claims) > 1:
                failures_left.pop()
                raise RuntimeError("commit failed")

    app.queue.processing = processing_that_breaks_once  # type: ignore[method-assign]
    assert app.worker().run_once() == 5
    assert effects(app) == sorted(ids)  # each once, after the one-by-one fallback
    assert {app.inbox.get(i).status for i in ids} == {Status.PROCESSED}
    assert len(calls) == 10  # ran in the failed batch (rolled back), then once each


def test_ignored_and_processed_in_one_batch_are_both_marked(settings: Settings) -> None:
    app = new_app(settings)
    app.on("payment_intent.succeeded")(lambda event, tx: None)
    ids = store(app, [make_event("payment_intent.succeeded"), make_event("customer.created")])
    assert app.worker().run_once() == 2
    assert [app.inbox.get(i).status for i in ids] == [Status.PROCESSED, Status.IGNORED]
    stats = app.inbox.stats()
    assert (stats["processed"], stats["ignored"]) == (2, 1)


def test_a_claim_taken_over_before_the_batch_starts_is_left_to_its_new_owner(
        settings: Settings) -> None:
    app = new_app(settings)  # the claims below give their own leases
    app.on("payment_intent.succeeded")(
        lambda event, tx: tx.execute("INSERT INTO effects (event_id) VALUES (?)", (event.id,)))
    ids = store(app, [make_event() for _ in range(3)])
    stale = app.queue.claim("old", 10, 0.0)        # lease already over
    fresh = app.queue.claim("new", 10, 60.0)       # takes all three over
    assert {c.id for c in fresh} == set(ids)
    app.worker().process_batch(stale)              # the stale owner may not apply them
    assert effects(app) == []
    app.worker().process_batch(fresh)
    assert effects(app) == sorted(ids)


def test_handlers_that_read_what_they_wrote_see_it_in_a_batch(settings: Settings) -> None:
    """On PostgreSQL a batch is pipelined; a handler's ``rowcount`` and reads must still be
    those of its own statements (the shop's state machine decides on them)."""
    app = new_app(settings)
    ids = store(app, [make_event() for _ in range(8)])
    seen: list[tuple[str, int, int, int]] = []

    @app.on("payment_intent.succeeded")
    def record(event: ichido.Event, tx) -> None:
        inserted = tx.execute("INSERT INTO effects (event_id) VALUES (?)", (event.id,)).rowcount
        updated = tx.execute("UPDATE effects SET event_id = event_id WHERE event_id = ?",
                             (event.id,)).rowcount
        (count,) = tx.execute("SELECT count(*) FROM effects").fetchone()
        seen.append((event.id, inserted, updated, count))

    assert app.worker().run_once() == 8
    # Once each, in one batch (a wrong count would have failed it and rerun it one by one).
    assert sorted(i for i, *_ in seen) == sorted(ids)
    assert {(inserted, updated) for _, inserted, updated, _ in seen} == {(1, 1)}
    assert [count for *_, count in seen] == list(range(1, 9))
    assert effects(app) == sorted(ids)


def test_a_failing_statement_in_a_batch_fails_only_its_own_event(settings: Settings) -> None:
    """A statement's error may surface later in a pipelined batch, even inside another event's
    handler; the one-by-one rerun must still pin it on the event that caused it."""
    app = new_app(settings)
    ids = store(app, [make_event() for _ in range(6)])
    culprit = ids[2]

    @app.on("payment_intent.succeeded")
    def record(event: ichido.Event, tx) -> None:
        tx.execute("INSERT INTO effects (event_id) VALUES (?)", (event.id,))
        if event.id == culprit:
            tx.execute("INSERT INTO no_such_table (x) VALUES (1)")  # no reply is waited for

    assert app.worker().run_once() == 6
    assert effects(app) == sorted(set(ids) - {culprit})
    statuses = {i: app.inbox.get(i).status for i in ids}
    assert statuses.pop(culprit) == Status.RETRYING
    assert set(statuses.values()) == {Status.PROCESSED}
    assert "no_such_table" in app.inbox.get(culprit).failures[0][2]
