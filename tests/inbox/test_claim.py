"""Claiming: due events go out under a lease, one owner at a time; an expired lease is taken
over, a retry waits for its time."""

from __future__ import annotations

import threading
import time
from collections import Counter

from ichido.config import Settings
from ichido.queue.base import Lease
from tests.inbox.support import (Stores, claim_one, delivery, open_stores, retake,
                                 run_then_close)


def test_claim_takes_due_events_up_to_the_limit(stores: Stores) -> None:
    deliveries = [delivery(object_id=f"ch_{i}") for i in range(5)]
    stores.inbox.accept(deliveries)
    first = stores.queue.claim("w", 3, 60.0)
    second = stores.queue.claim("w", 3, 60.0)
    assert (len(first), len(second)) == (3, 2)
    assert stores.queue.claim("w", 3, 60.0) == []
    claims = {c.id: c for c in first + second}
    assert set(claims) == {d.id for d in deliveries}
    for d in deliveries:
        claim = claims[d.id]
        assert (claim.type, claim.body, claim.attempt, claim.object_id) == (
            d.type, d.body, 1, d.object_id)
        assert stores.inbox.get(d.id).status == "processing"


def test_claim_skips_live_leases_and_retakes_expired_ones(stores: Stores) -> None:
    a = delivery()
    stores.inbox.accept([a])
    held = claim_one(stores.queue, "first", lease=0.0)
    taken = retake(stores.queue, "second", lease=60.0)
    assert taken.id == a.id
    # It died in company: not charged, but it must now run alone (I5: a death is charged only
    # to the event that ran alone).
    assert (taken.attempt, taken.lease) == (held.attempt, Lease.ISOLATE)
    assert taken.token != held.token
    assert stores.queue.claim("third", 1, 60.0) == []  # the second lease is live


def test_a_lease_that_expires_while_running_alone_costs_an_attempt(stores: Stores) -> None:
    stores.inbox.accept([delivery()])
    held = claim_one(stores.queue, "first", lease=0.0)
    assert stores.queue.alone(held)
    taken = retake(stores.queue, "second", lease=60.0)
    assert (taken.id, taken.attempt) == (held.id, held.attempt + 1)


def test_claim_waits_for_next_attempt_at(stores: Stores) -> None:
    later, now = delivery(), delivery()
    stores.inbox.accept([later])
    assert stores.queue.fail(claim_one(stores.queue), "boom", time.time() + 3600)
    stores.inbox.accept([now])
    claim = claim_one(stores.queue)
    assert claim.id == now.id  # the retrying one is not due yet
    assert stores.queue.fail(claim, "boom", time.time() - 1)  # due already
    again = claim_one(stores.queue)
    assert (again.id, again.attempt) == (now.id, 2)
    assert stores.queue.claim("w", 10, 60.0) == []


def test_concurrent_claims_never_hand_one_event_to_two_workers(database_url: str,
                                                               stores: Stores) -> None:
    deliveries = [delivery() for _ in range(60)]
    stores.inbox.accept(deliveries)
    others = [open_stores(database_url) for _ in range(2)]
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def work(store: Stores, name: str) -> None:
        barrier.wait(timeout=30)
        while True:
            claims = store.queue.claim(name, 4, 60.0)
            if not claims:
                return
            with lock:
                claimed.extend(c.id for c in claims)

    threads = [threading.Thread(target=work, args=(others[i % 2], f"w{i}")) for i in range(4)]
    run_then_close(threads, others)
    assert Counter(claimed) == Counter(d.id for d in deliveries)
