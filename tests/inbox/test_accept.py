"""Accepting deliveries: each id is stored once, whatever the batches, the copies and the
concurrent writers, and every copy is counted in the tier that caught it."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from ichido.config import Settings
from ichido.event import Delivery, parse_delivery
from tests.inbox.support import Stores, counters, delivery, open_stores, run_then_close
from tests.support import make_event, wait_until


def test_accept_stores_new_ids_and_flags_copies_within_one_batch(stores: Stores) -> None:
    a, b = delivery(object_id="ch_1"), delivery()
    assert stores.inbox.accept([a, b, a]) == [True, True, False]
    record = stores.inbox.get(a.id)
    assert (record.id, record.type, record.created, record.object_id) == (
        a.id, a.type, a.created, "ch_1")
    assert (record.status, record.attempts, record.body) == ("pending", 0, a.body)
    assert record.failures == () and record.finished_at is None


def test_accept_is_idempotent_across_batches(stores: Stores) -> None:
    a, c = delivery(), delivery()
    assert stores.inbox.accept([a]) == [True]
    assert stores.inbox.accept([a, c]) == [False, True]
    assert stores.inbox.accept([c, a]) == [False, False]
    assert sorted(r.id for r in stores.inbox.list()) == sorted([a.id, c.id])


def test_a_copy_never_replaces_the_stored_body(stores: Stores) -> None:
    first = delivery(id="evt_same_id_" + str(time.time_ns()))
    other = parse_delivery(make_event("charge.refunded", id=first.id))
    stores.inbox.accept([first])
    assert stores.inbox.accept([other]) == [False]
    stored = stores.inbox.get(first.id)
    assert (stored.body, stored.type) == (first.body, first.type)


def test_accept_counts_received_unique_and_both_duplicate_tiers(stores: Stores) -> None:
    a, b = delivery(), delivery()
    stores.inbox.accept([a, a, b], cache_hits=3)
    assert counters(stores.inbox) == {"received": 6, "unique": 2, "duplicates_cache": 3,
                               "duplicates_durable": 1}
    stores.inbox.accept([b], cache_hits=0)
    stores.inbox.accept([], cache_hits=2)  # a batch answered entirely by the seen tier
    assert counters(stores.inbox) == {"received": 9, "unique": 2, "duplicates_cache": 5,
                               "duplicates_durable": 2}


def test_concurrent_writers_store_each_id_once(database_url: str, stores: Stores) -> None:
    deliveries = [delivery() for _ in range(40)]
    others = [open_stores(database_url) for _ in range(3)]
    barrier = threading.Barrier(len(others))
    new_by_id: Counter = Counter()
    lock = threading.Lock()

    def write(store: Stores, offset: int) -> None:
        batch = deliveries[offset:] + deliveries[:offset]  # same ids, different order
        barrier.wait(timeout=30)
        for start in range(0, len(batch), 8):
            chunk = batch[start:start + 8]
            flags = store.inbox.accept(chunk)
            with lock:
                new_by_id.update(d.id for d, new in zip(chunk, flags) if new)

    threads = [threading.Thread(target=write, args=(s, i * 13)) for i, s in enumerate(others)]
    run_then_close(threads, others)
    assert new_by_id == Counter(d.id for d in deliveries)
    assert counters(stores.inbox) == {"received": 120, "unique": 40, "duplicates_cache": 0,
                               "duplicates_durable": 80}


class _Release(Exception):
    """Raised to roll the blocking transaction back."""


def test_concurrent_batches_of_the_same_ids_in_opposite_orders_both_succeed(
        database_url: str, stores: Stores) -> None:
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
    others = [open_stores(database_url) for _ in range(2)]
    for store in others:
        store.inbox.ping()
    results: dict[int, list[bool]] = {}
    errors: list[Exception] = []

    def write(index: int, batch: list[Delivery]) -> None:
        try:
            results[index] = others[index].inbox.accept(batch)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(0, [a, middle, b])),
               threading.Thread(target=write, args=(1, [b, middle, a]))]
    with pytest.raises(_Release):
        with stores.database.transaction() as tx:
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
    for store in others:
        store.close()
    assert errors == []
    firsts = Counter()
    for index, batch in ((0, [a, middle, b]), (1, [b, middle, a])):
        firsts.update(d.id for d, new in zip(batch, results[index]) if new)
    assert firsts == Counter({a.id: 1, middle.id: 1, b.id: 1})
