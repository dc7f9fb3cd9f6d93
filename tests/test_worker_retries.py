"""The worker's retries over time (I5, docs/invariants.md): backoff with jitter under a cap, the
spacing of attempts, late attempts, a worker thread that survives what it did not expect, and
the leases that keep a claim to one worker at a time (I2).

Driven in-process, step by step, as in test_worker.py (whose helpers these are).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, Callable

import pytest

import ichido.loops as loops_module
import ichido.queue.base as queue_base
from ichido import Event
from ichido.config import Settings
from ichido.queue.base import Claim, Running, backoff_seconds
from tests.support import effect_counts, make_event, record_effect, wait_until
from tests.test_worker import new_app, status_of, store

# -- backoff ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rand", [0.0, 0.25, 1.0])
def test_backoff_doubles_with_jitter_and_stays_under_the_cap(rand: float) -> None:
    values = [backoff_seconds(a, 1.0, 20.0, rand=lambda: rand) for a in range(1, 9)]
    ceilings = [min(20.0, 2.0 ** (a - 1)) for a in range(1, 9)]
    for value, ceiling in zip(values, ceilings):
        assert ceiling / 2 <= value <= ceiling
    assert values[:5] == sorted(values[:5]) and len(set(values[:5])) == 5  # grows until the cap
    assert values[5:] == [values[5]] * 3  # then stays at the cap


def test_retry_spacing_follows_backoff(settings: Settings,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    base, cap = 2.0, 10.0
    app = new_app(settings, max_attempts=6, retry_base_seconds=base, retry_cap_seconds=cap)

    @app.on("test.always_fails")
    def broken(event: Event, tx) -> None:
        raise RuntimeError("still broken")

    # The retry clock is pinned far in the past, so each retry is due at once while its
    # next_attempt_at still shows exactly the backoff the worker chose.
    pinned = time.time() - 100_000
    monkeypatch.setattr(queue_base, "time", SimpleNamespace(time=lambda: pinned))
    fixed = queue_base.backoff_seconds
    monkeypatch.setattr(queue_base, "backoff_seconds",
                        lambda attempt, b, c: fixed(attempt, b, c, rand=lambda: 0.5))

    [event_id] = store(app, make_event("test.always_fails"))
    worker = app.worker()
    delays = []
    for _ in range(5):
        assert worker.run_once() == 1
        record = app.inbox.get(event_id)
        assert record.status == "retrying"
        delays.append(record.next_attempt_at - pinned)
    assert worker.run_once() == 1
    assert status_of(app, event_id) == "dead"

    expected = [fixed(attempt, base, cap, rand=lambda: 0.5) for attempt in range(1, 6)]
    assert delays == pytest.approx(expected, abs=1e-6)
    assert delays[0] < delays[1] < delays[2] < delays[3]  # grows, then the cap holds it
    assert delays[3] == pytest.approx(delays[4])


def test_a_failure_on_a_very_late_attempt_is_retried_and_the_worker_survives(
        settings: Settings) -> None:
    """Found as a bug: past attempt 1025, ``base * 2 ** (attempt - 1)`` overflowed a float and
    the OverflowError killed the worker thread."""
    app = new_app(settings, max_attempts=100_000)

    @app.on("test.always_fails")
    def broken(event: Event, tx) -> None:
        raise RuntimeError("still broken")

    [event_id] = store(app, make_event("test.always_fails"))
    with app.database.transaction() as tx:  # as if it had been failing for weeks
        tx.execute("UPDATE ichido_events SET attempts = ? WHERE id = ?", (1100, event_id))
    assert app.worker().run_once() == 1
    record = app.inbox.get(event_id)
    assert (record.status, record.attempts) == ("retrying", 1101)
    assert record.next_attempt_at is not None


def test_worker_thread_survives_an_unexpected_error(tmp_path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker loop itself, not a store: one backend is enough."""
    app = new_app(Settings(database_url=f"sqlite:///{tmp_path / 'loop.db'}",
                           poll_interval_seconds=0.02))
    app.on("charge.succeeded")(record_effect)
    [event_id] = store(app, make_event("charge.succeeded"))
    inbox = app.queue
    real_claim = inbox.claim
    calls = []

    def claim_with_a_bug_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug, not a storage error")
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(inbox, "claim", claim_with_a_bug_once)
    stop = threading.Event()
    thread = threading.Thread(target=app.worker().run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: status_of(app, event_id) == "processed" or not thread.is_alive(),
                   message="the event processed")
        assert thread.is_alive(), "the worker thread died on an unexpected error"
    finally:
        stop.set()
        thread.join(30)
    assert status_of(app, event_id) == "processed"
    assert effect_counts(app.database) == {event_id: 1}


# -- leases --------------------------------------------------------------------------------------


def test_stale_claim_cannot_commit_after_another_worker_took_over(settings: Settings) -> None:
    app = new_app(settings, lease_seconds=1.0)  # the shortest lease Settings allows
    app.on("charge.succeeded")(record_effect)
    [event_id] = store(app, make_event("charge.succeeded"))
    slow, fast = app.worker("slow"), app.worker("fast")

    [stale] = slow.queue.claim(slow.name, 1, slow.settings.lease_seconds)
    # the slow worker's lease runs out; the fast one takes the event over, to run it alone
    fresh = wait_until(lambda: fast.queue.claim(fast.name, 1, 60.0), message="the take-over")[0]
    assert (fresh.id, fresh.attempt, fresh.isolate) == (event_id, 1, True)
    assert fresh.token != stale.token

    slow.process(stale)  # wakes up late: must not commit, must not record a failure
    record = app.inbox.get(event_id)
    assert (record.status, record.failures) == ("processing", ())
    assert effect_counts(app.database) == {}

    fast.process(fresh)
    assert status_of(app, event_id) == "processed"
    slow.process(stale)  # and later still: nothing changes
    assert effect_counts(app.database) == {event_id: 1}
    assert app.inbox.get(event_id).failures == ()


def test_live_lease_keeps_other_workers_away(settings: Settings) -> None:
    app = new_app(settings, lease_seconds=60.0)
    app.on("charge.succeeded")(record_effect)
    store(app, make_event("charge.succeeded"))
    first, second = app.worker("first"), app.worker("second")
    [claim] = first.queue.claim(first.name, 10, 60.0)
    assert second.run_once() == 0
    first.process(claim)
    assert sum(effect_counts(app.database).values()) == 1


def test_event_that_never_finishes_goes_dead_after_max_attempts(settings: Settings) -> None:
    """Crash loop: each claim's worker dies mid-event; the next claim past the limit gives up.
    The first death is in company (a claim is alone only once marked so): not charged."""
    app = new_app(settings, max_attempts=3)
    app.on("charge.succeeded")(record_effect)
    [event_id] = store(app, make_event("charge.succeeded"))
    for attempt in (1, 1, 2, 3):
        [claim] = wait_until(lambda: app.queue.claim("crashing", 1, 0.0), message="a claim")
        assert claim.attempt == attempt
        if claim.isolate:
            assert app.queue.alone(claim)  # ...and the worker "crashes" here
    wait_until(lambda: app.worker().run_once(), message="the last claim")
    record = app.inbox.get(event_id)
    assert record.status == "dead"
    assert "gave up" in record.last_error
    assert effect_counts(app.database) == {}


def test_a_death_is_charged_only_to_the_event_that_ran_alone(settings: Settings) -> None:
    """The process dies holding a batch (one of its events killed it, and nothing says which):
    the batch is claimed again to run alone, under the same attempt numbers; only an event
    that dies while it runs alone is charged, and given up past ``max_attempts`` (I5).
    Each claim's lease is 0 s, so it has expired by the next: the worker "died" holding it."""
    app = new_app(settings, max_attempts=2)
    app.on("charge.succeeded")(record_effect)
    ids = store(app, *(make_event("charge.succeeded") for _ in range(5)))
    poison = ids[2]

    def claim_all() -> dict[str, Claim]:
        claims = wait_until(lambda: app.queue.claim("dies", 5, 0.0), message="a claim")
        return {claim.id: claim for claim in claims}

    batch = claim_all()  # and the process dies mid-batch
    assert {(c.attempt, c.isolate) for c in batch.values()} == {(1, False)}
    for _ in range(2):  # twice more, before any of them ran alone: nobody is charged
        batch = claim_all()
        assert {(c.attempt, c.isolate) for c in batch.values()} == {(1, True)}
    for attempt in (1, 2):  # the poison runs alone, and dies
        assert app.queue.alone(batch[poison])
        batch = claim_all()
        assert {i: c.attempt for i, c in batch.items()} == {**dict.fromkeys(ids, 1),
                                                             poison: attempt + 1}
        assert all(c.isolate for c in batch.values())

    app.worker().process_batch(list(batch.values()))  # now all five are due: none dies
    assert effect_counts(app.database) == dict.fromkeys(set(ids) - {poison}, 1)
    record = app.inbox.get(poison)
    assert record.status == "dead" and "process died" in record.last_error, record
    assert {status_of(app, i) for i in ids if i != poison} == {"processed"}
    assert [(a, "gave up" in error) for a, _, error in record.failures] == [(3, True)]


def test_what_runs_alone_has_the_process_to_itself() -> None:
    """An item charged for its process's death must have run alone in it: work in company (an
    event batch on another thread, an outbox send) waits until it is done, and it waits for
    the work in company already running. Each side gives the other a second to break in."""
    running = Running()
    log: list[str] = []
    inside = {name: threading.Event() for name in ("alone", "company")}

    def run(name: str, turn: Callable[[], Any], other: str) -> None:
        with turn():
            log.append(f"{name} in")
            inside[name].set()
            inside[other].wait(1.0)  # set only if the other got in meanwhile: a violation
            log.append(f"{name} out")

    company = threading.Thread(target=run, args=("company", running.together, "alone"))
    company.start()
    inside["company"].wait(10)
    alone = threading.Thread(target=run, args=("alone", running.alone, "company"))
    alone.start()
    wait_until(lambda: running._waiting_alone, message="the alone run waiting")
    inside["company"].clear()
    late = threading.Thread(target=run, args=("company", running.together, "alone"))
    late.start()  # arrives while the alone run waits: goes after it
    for thread in (company, alone, late):
        thread.join(30)
    assert log == ["company in", "company out", "alone in", "alone out", "company in",
                   "company out"]
    with running.together(), running.alone():  # work started by running work is part of it
        pass


def test_a_loop_with_a_long_interval_and_no_wake_event_stops_when_told() -> None:
    """Found as a bug: the alert watcher slept its 30 s interval on an event nobody set, so
    every ``ichido serve`` took that long to stop (and tests' processes were SIGKILLed). A
    loop without a wake event sleeps on ``stop`` itself."""
    stop = threading.Event()
    steps: list[int] = []
    thread = threading.Thread(target=loops_module.poll,
                              args=("test", lambda: steps.append(1) or 0, stop, None, 3600.0))
    thread.start()
    wait_until(lambda: steps, timeout=30, message="the loop's first step")
    stop.set()
    thread.join(60)
    assert not thread.is_alive(), "the loop slept its interval out instead of stopping"
    assert steps == [1]
