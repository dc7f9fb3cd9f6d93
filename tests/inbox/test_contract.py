"""The ``Inbox`` contract: what every storage backend must do, run unchanged on each one.

The backend comes from the ``database_url`` fixture (tests/conftest.py parametrizes it), so a new
backend is covered by adding it there.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Iterator

import pytest

from ichido.config import Settings
from ichido.errors import LeaseLost, SchemaError
from ichido.event import Delivery, parse_delivery
from ichido.db import open_database
from ichido.queue import Status, open_queue
from tests.apps.broken_schema import BROKEN_STEP
from tests.support import Store, effect_counts, make_event, migrate_effects, wait_until

DAY = 86_400.0
COUNTERS = ("received", "unique", "duplicates_cache", "duplicates_durable")


class Roles:
    """The database, inbox and queue of one URL, for tests that cross them (on SQL engines the
    queue is the inbox's table): each name is looked up in the inbox, the queue, the database."""

    def __init__(self, database_url: str) -> None:
        self.store = Store(database_url)
        self.queue = open_queue(Settings(database_url=database_url), self.store.inbox)

    def __getattr__(self, name: str):
        for role in (self.store.inbox, self.queue, self.store.database):
            if hasattr(role, name):
                return getattr(role, name)
        raise AttributeError(name)

    def close(self) -> None:
        self.queue.close()
        self.store.close()


Inbox = Roles


def open_inbox(settings: Settings) -> Roles:
    return Roles(settings.database_url)


@pytest.fixture
def inbox(database_url: str) -> Iterator[Roles]:
    migrate_effects(database_url)
    store = Roles(database_url)
    yield store
    store.close()


def delivery(type: str = "charge.succeeded", **kwargs) -> Delivery:
    return parse_delivery(make_event(type, **kwargs))


def counters(inbox: Inbox) -> dict[str, int]:
    stats = inbox.stats()
    return {name: stats[name] for name in COUNTERS}


def claim_one(inbox: Inbox, owner: str = "w", lease: float = 60.0):
    [claim] = inbox.claim(owner, 1, lease)
    return claim


def retake(inbox: Inbox, owner: str = "other", lease: float = 60.0):
    """Claim again once an expired (zero-length) lease makes the event due."""
    return wait_until(lambda: inbox.claim(owner, 1, lease), message="the retake")[0]


def write_effect(tx, claim) -> None:
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (claim.id, claim.type, claim.attempt))


def age(inbox: Inbox, seconds: float, *event_ids: str) -> None:
    with inbox.transaction() as tx:
        for event_id in event_ids:
            tx.execute("UPDATE ichido_events SET received_at = received_at - ? WHERE id = ?",
                       (seconds, event_id))


# -- accept -------------------------------------------------------------------------------------


def test_accept_stores_new_ids_and_flags_copies_within_one_batch(inbox: Inbox) -> None:
    a, b = delivery(object_id="ch_1"), delivery()
    assert inbox.accept([a, b, a]) == [True, True, False]
    record = inbox.get(a.id)
    assert (record.id, record.type, record.created, record.object_id) == (
        a.id, a.type, a.created, "ch_1")
    assert (record.status, record.attempts, record.body) == ("pending", 0, a.body)
    assert record.failures == () and record.finished_at is None


def test_accept_is_idempotent_across_batches(inbox: Inbox) -> None:
    a, c = delivery(), delivery()
    assert inbox.accept([a]) == [True]
    assert inbox.accept([a, c]) == [False, True]
    assert inbox.accept([c, a]) == [False, False]
    assert sorted(r.id for r in inbox.list()) == sorted([a.id, c.id])


def test_a_copy_never_replaces_the_stored_body(inbox: Inbox) -> None:
    first = delivery(id="evt_same_id_" + str(time.time_ns()))
    other = parse_delivery(make_event("charge.refunded", id=first.id))
    inbox.accept([first])
    assert inbox.accept([other]) == [False]
    assert (inbox.get(first.id).body, inbox.get(first.id).type) == (first.body, first.type)


def test_accept_counts_received_unique_and_both_duplicate_tiers(inbox: Inbox) -> None:
    a, b = delivery(), delivery()
    inbox.accept([a, a, b], cache_hits=3)
    assert counters(inbox) == {"received": 6, "unique": 2, "duplicates_cache": 3,
                               "duplicates_durable": 1}
    inbox.accept([b], cache_hits=0)
    inbox.accept([], cache_hits=2)  # a batch answered entirely by the seen tier
    assert counters(inbox) == {"received": 9, "unique": 2, "duplicates_cache": 5,
                               "duplicates_durable": 2}


def test_concurrent_writers_store_each_id_once(database_url: str, inbox: Inbox) -> None:
    deliveries = [delivery() for _ in range(40)]
    stores = [open_inbox(Settings(database_url=database_url)) for _ in range(3)]
    barrier = threading.Barrier(len(stores))
    new_by_id: Counter = Counter()
    lock = threading.Lock()

    def write(store: Inbox, offset: int) -> None:
        batch = deliveries[offset:] + deliveries[:offset]  # same ids, different order
        barrier.wait(timeout=30)
        for start in range(0, len(batch), 8):
            chunk = batch[start:start + 8]
            flags = store.accept(chunk)
            with lock:
                new_by_id.update(d.id for d, new in zip(chunk, flags) if new)

    threads = [threading.Thread(target=write, args=(s, i * 13)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert new_by_id == Counter(d.id for d in deliveries)
    assert counters(inbox) == {"received": 120, "unique": 40, "duplicates_cache": 0,
                               "duplicates_durable": 80}


# -- claim --------------------------------------------------------------------------------------


def test_claim_takes_due_events_up_to_the_limit(inbox: Inbox) -> None:
    deliveries = [delivery(object_id=f"ch_{i}") for i in range(5)]
    inbox.accept(deliveries)
    first = inbox.claim("w", 3, 60.0)
    second = inbox.claim("w", 3, 60.0)
    assert (len(first), len(second)) == (3, 2)
    assert inbox.claim("w", 3, 60.0) == []
    claims = {c.id: c for c in first + second}
    assert set(claims) == {d.id for d in deliveries}
    for d in deliveries:
        claim = claims[d.id]
        assert (claim.type, claim.body, claim.attempt, claim.object_id) == (
            d.type, d.body, 1, d.object_id)
        assert inbox.get(d.id).status == "processing"


def test_claim_skips_live_leases_and_retakes_expired_ones(inbox: Inbox) -> None:
    a = delivery()
    inbox.accept([a])
    held = claim_one(inbox, "first", lease=0.0)
    taken = retake(inbox, "second", lease=60.0)
    assert taken.id == a.id
    assert taken.attempt == held.attempt + 1
    assert taken.token != held.token
    assert inbox.claim("third", 1, 60.0) == []  # the second lease is live


def test_claim_waits_for_next_attempt_at(inbox: Inbox) -> None:
    later, now = delivery(), delivery()
    inbox.accept([later])
    assert inbox.fail(claim_one(inbox), "boom", time.time() + 3600)
    inbox.accept([now])
    claim = claim_one(inbox)
    assert claim.id == now.id  # the retrying one is not due yet
    assert inbox.fail(claim, "boom", time.time() - 1)  # due already
    again = claim_one(inbox)
    assert (again.id, again.attempt) == (now.id, 2)
    assert inbox.claim("w", 10, 60.0) == []


def test_concurrent_claims_never_hand_one_event_to_two_workers(database_url: str,
                                                               inbox: Inbox) -> None:
    deliveries = [delivery() for _ in range(60)]
    inbox.accept(deliveries)
    stores = [open_inbox(Settings(database_url=database_url)) for _ in range(2)]
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def work(store: Inbox, name: str) -> None:
        barrier.wait(timeout=30)
        while True:
            claims = store.claim(name, 4, 60.0)
            if not claims:
                return
            with lock:
                claimed.extend(c.id for c in claims)

    threads = [threading.Thread(target=work, args=(stores[i % 2], f"w{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert Counter(claimed) == Counter(d.id for d in deliveries)


# -- finishing ----------------------------------------------------------------------------------


def test_finishing_commits_the_status_with_the_handlers_writes(inbox: Inbox) -> None:
    a = delivery()
    inbox.accept([a])
    claim = claim_one(inbox)
    with inbox.finishing(claim, Status.PROCESSED) as tx:
        write_effect(tx, claim)
    record = inbox.get(a.id)
    assert (record.status, record.next_attempt_at) == ("processed", None)
    assert record.finished_at is not None
    assert effect_counts(inbox) == {a.id: 1}
    assert inbox.claim("w", 1, 60.0) == []


def test_finishing_as_ignored(inbox: Inbox) -> None:
    a = delivery("customer.created")
    inbox.accept([a])
    with inbox.finishing(claim_one(inbox), Status.IGNORED):
        pass
    assert inbox.get(a.id).status == "ignored"
    stats = inbox.stats()
    assert (stats["processed"], stats["ignored"]) == (1, 1)


def test_finishing_rolls_everything_back_on_an_exception(inbox: Inbox) -> None:
    a = delivery()
    inbox.accept([a])
    claim = claim_one(inbox)
    with pytest.raises(RuntimeError):
        with inbox.finishing(claim, Status.PROCESSED) as tx:
            write_effect(tx, claim)
            raise RuntimeError("handler failed")
    record = inbox.get(a.id)
    assert (record.status, record.finished_at) == ("processing", None)
    assert effect_counts(inbox) == {}
    assert inbox.fail(claim, "handler failed", None)  # the claim is still ours


def test_finishing_fences_a_stale_claim(inbox: Inbox) -> None:
    a = delivery()
    inbox.accept([a])
    stale = claim_one(inbox, "slow", lease=0.0)
    fresh = retake(inbox, "fast")
    with pytest.raises(LeaseLost):
        with inbox.finishing(stale, Status.PROCESSED) as tx:
            write_effect(tx, stale)
    assert inbox.get(a.id).status == "processing"
    assert effect_counts(inbox) == {}
    with inbox.finishing(fresh, Status.PROCESSED) as tx:
        write_effect(tx, fresh)
    with pytest.raises(LeaseLost):  # finished: not even the last owner may finish it again
        with inbox.finishing(fresh, Status.PROCESSED) as tx:
            write_effect(tx, fresh)
    assert effect_counts(inbox) == {a.id: 1}


def test_processing_a_batch_drops_claims_taken_over_and_commits_the_rest(inbox: Inbox) -> None:
    deliveries = [delivery() for _ in range(3)]
    inbox.accept(deliveries)
    claims = inbox.claim("slow", 10, 0.0)
    stolen = retake(inbox, "fast")
    with inbox.processing(claims) as batch:
        assert sorted(c.id for c in batch.claims) == sorted(
            c.id for c in claims if c.id != stolen.id)
        for claim in batch.claims:
            write_effect(batch.tx, claim)
            batch.finish(claim, Status.PROCESSED)
    kept = {d.id for d in deliveries} - {stolen.id}
    assert effect_counts(inbox) == dict.fromkeys(kept, 1)
    assert {i: inbox.get(i).status for i in kept} == dict.fromkeys(kept, "processed")
    assert inbox.get(stolen.id).status == "processing"  # still the new owner's
    with inbox.finishing(stolen, Status.PROCESSED) as tx:
        write_effect(tx, stolen)
    assert effect_counts(inbox) == {d.id: 1 for d in deliveries}


def test_an_error_escaping_a_batch_commits_nothing(inbox: Inbox) -> None:
    a, b = delivery(), delivery()
    inbox.accept([a, b])
    claims = inbox.claim("w", 10, 60.0)
    with pytest.raises(RuntimeError):
        with inbox.processing(claims) as batch:
            for claim in batch.claims:
                write_effect(batch.tx, claim)
                batch.finish(claim, Status.PROCESSED)
            raise RuntimeError("the worker died mid-batch")
    assert effect_counts(inbox) == {}
    assert {inbox.get(a.id).status, inbox.get(b.id).status} == {"processing"}


# -- fail, dead letters -------------------------------------------------------------------------


def test_fail_moves_to_retrying_then_dead_and_keeps_every_error(inbox: Inbox) -> None:
    a = delivery()
    inbox.accept([a])
    retry_at = time.time() - 0.5
    assert inbox.fail(claim_one(inbox), "first error", retry_at)
    record = inbox.get(a.id)
    assert (record.status, record.next_attempt_at, record.last_error) == (
        "retrying", pytest.approx(retry_at), "first error")
    assert inbox.fail(claim_one(inbox), "second error", None)
    record = inbox.get(a.id)
    assert (record.status, record.next_attempt_at, record.last_error, record.attempts) == (
        "dead", None, "second error", 2)
    assert [(f[0], f[2]) for f in record.failures] == [(1, "first error"), (2, "second error")]
    assert inbox.claim("w", 10, 60.0) == []
    stats = inbox.stats()
    assert (stats["dead"], stats["retrying"], stats["processed"]) == (1, 0, 0)


def test_fail_with_a_stale_claim_changes_nothing(inbox: Inbox) -> None:
    a = delivery()
    inbox.accept([a])
    stale = claim_one(inbox, "slow", lease=0.0)
    fresh = retake(inbox, "fast")
    assert inbox.fail(stale, "too late", None) is False
    record = inbox.get(a.id)
    assert (record.status, record.failures, record.last_error) == ("processing", (), None)
    assert inbox.fail(fresh, "real failure", None) is True


def test_requeue_dead_by_id_or_all(inbox: Inbox) -> None:
    dead = [delivery() for _ in range(3)]
    waiting = delivery()
    inbox.accept(dead)
    for _ in dead:
        assert inbox.fail(claim_one(inbox), "boom", None)
    inbox.accept([waiting])

    assert inbox.requeue_dead([waiting.id]) == 0  # only dead letters
    assert inbox.requeue_dead([]) == 0
    assert inbox.requeue_dead([dead[0].id]) == 1
    record = inbox.get(dead[0].id)
    assert (record.status, record.attempts) == ("retrying", 0)
    assert inbox.requeue_dead() == 2
    assert inbox.requeue_dead() == 0
    claims = inbox.claim("w", 10, 60.0)
    assert sorted(c.id for c in claims) == sorted([*(d.id for d in dead), waiting.id])
    assert {c.attempt for c in claims} == {1}


# -- prune, stats, reads ------------------------------------------------------------------------


def test_prune_removes_only_old_finished_events_and_keeps_their_counts(inbox: Inbox) -> None:
    processed, ignored, dead, retrying, pending, recent = (delivery() for _ in range(6))
    for d, status in ((processed, Status.PROCESSED), (ignored, Status.IGNORED),
                      (recent, Status.PROCESSED)):
        inbox.accept([d])
        with inbox.finishing(claim_one(inbox), status):
            pass
    inbox.accept([dead])
    inbox.fail(claim_one(inbox), "boom", None)
    inbox.accept([retrying])
    inbox.fail(claim_one(inbox), "boom", time.time() + 3600)
    inbox.accept([pending])
    age(inbox, 31 * DAY, processed.id, ignored.id, dead.id, retrying.id, pending.id)
    before = inbox.stats()

    assert inbox.prune(40 * DAY) == 0
    assert inbox.prune(30 * DAY) == 2
    assert inbox.get(processed.id) is None and inbox.get(ignored.id) is None
    assert [inbox.get(d.id).status for d in (dead, retrying, pending, recent)] == [
        "dead", "retrying", "pending", "processed"]
    after = inbox.stats()
    assert after == before
    assert (after["processed"], after["ignored"]) == (3, 1)
    assert inbox.prune(30 * DAY) == 0


def test_stats_has_every_count_as_an_integer(inbox: Inbox) -> None:
    stats = inbox.stats()
    for key in ("received", "unique", "duplicates_cache", "duplicates_durable", "processed",
                "ignored", "pending", "processing", "retrying", "dead"):
        assert type(stats[key]) is int and stats[key] == 0
    inbox.accept([delivery(), delivery()])
    claim_one(inbox)
    stats = inbox.stats()
    assert (stats["pending"], stats["processing"]) == (1, 1)


def test_list_filters_and_shows_newest_first(inbox: Inbox) -> None:
    old, middle, new = delivery("charge.succeeded"), delivery("charge.refunded"), delivery()
    for d in (old, middle, new):
        inbox.accept([d])
    age(inbox, 30, old.id)
    age(inbox, 20, middle.id)
    assert [r.id for r in inbox.list()] == [new.id, middle.id, old.id]
    assert [r.id for r in inbox.list(limit=2)] == [new.id, middle.id]
    assert [r.id for r in inbox.list(type="charge.refunded")] == [middle.id]
    assert [r.id for r in inbox.list(status="pending", type="charge.succeeded")] == [
        new.id, old.id]
    assert inbox.list(status="dead") == []


def test_get_of_an_unknown_id_is_none(inbox: Inbox) -> None:
    assert inbox.get("evt_never_stored") is None


def test_ping_and_plain_transactions(inbox: Inbox) -> None:
    inbox.ping()
    with pytest.raises(ZeroDivisionError):
        with inbox.transaction() as tx:
            tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
                       ("evt_rolled_back", "t", 1))
            1 / 0
    with inbox.transaction() as tx:
        tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
                   ("evt_kept", "t", 1))
    assert effect_counts(inbox) == {"evt_kept": 1}


class _Release(Exception):
    """Raised to roll the blocking transaction back."""


def test_concurrent_batches_of_the_same_ids_in_opposite_orders_both_succeed(
        database_url: str, inbox: Inbox) -> None:
    """Two receivers' group commits hold the same ids in different orders (I8: copies arriving
    at two receivers at once). Storing them must not fail either batch (a 503 for a whole batch).

    Made deterministic with a third transaction holding the middle id until both batches wait on
    it; the wait is observed through PostgreSQL's own lock view. SQLite has one writer at a time,
    so lock order cannot deadlock there. (Found as a bug: batches were inserted in arrival order
    and the two deadlocked.)
    """
    if not database_url.startswith("postgres"):
        pytest.skip("SQLite serializes writers: no lock-order deadlock is possible")
    stamp = time.time_ns()
    middle = parse_delivery(make_event(id=f"evt_{stamp}_0_middle"))  # sorts first
    a = parse_delivery(make_event(id=f"evt_{stamp}_1_a"))
    b = parse_delivery(make_event(id=f"evt_{stamp}_2_b"))
    stores = [open_inbox(Settings(database_url=database_url)) for _ in range(2)]
    for store in stores:
        store.ping()
    results: dict[int, list[bool]] = {}
    errors: list[Exception] = []

    def write(index: int, batch: list[Delivery]) -> None:
        try:
            results[index] = stores[index].accept(batch)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(0, [a, middle, b])),
               threading.Thread(target=write, args=(1, [b, middle, a]))]
    with pytest.raises(_Release):
        with inbox.transaction() as tx:
            tx.execute("INSERT INTO ichido_events (id, type, created, body, received_at)"
                       " VALUES (?, ?, ?, ?, ?)",
                       (middle.id, middle.type, middle.created, middle.body, time.time()))
            for thread in threads:
                thread.start()
            wait_until(lambda: tx.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))").fetchone()[0] >= 2,
                message="both batches to wait on the middle id")
            raise _Release
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert errors == []
    firsts = Counter()
    for index, batch in ((0, [a, middle, b]), (1, [b, middle, a])):
        firsts.update(d.id for d, new in zip(batch, results[index]) if new)
    assert firsts == Counter({a.id: 1, middle.id: 1, b.id: 1})


def test_a_schema_step_with_invalid_sql_is_reported_as_that_step(database_url: str) -> None:
    """Not as an unreachable database (``storage_unavailable``): the server is fine, the step
    is not. The step is one transaction: its valid first statement is rolled back too."""
    settings = Settings(database_url=database_url)
    with pytest.raises(SchemaError) as failed:
        open_database(settings, migrate=True, steps=[BROKEN_STEP]).close()
    assert failed.value.code == "migration_failed"
    assert failed.value.message.startswith("migration step test_broken v1 failed on ")
    assert "TABLEX" in failed.value.message and "\n" not in failed.value.message
    store = open_inbox(settings)
    try:
        with pytest.raises(store.engine_errors):
            with store.transaction() as tx:
                tx.execute("SELECT count(*) FROM broken_first")
    finally:
        store.close()
