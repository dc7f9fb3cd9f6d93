"""Claiming: due events go out under a lease, one owner at a time; an expired lease is taken
over, a retry waits for its time."""

from __future__ import annotations

import threading
import time
from collections import Counter

from ichido.config import Settings
from ichido.queue.base import Lease
from tests.inbox.support import (Inbox, claim_one, delivery, open_inbox, retake,
                                 run_then_close)


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
    # It died in company: not charged, but it must now run alone (I5: a death is charged only
    # to the event that ran alone).
    assert (taken.attempt, taken.lease) == (held.attempt, Lease.ISOLATE)
    assert taken.token != held.token
    assert inbox.claim("third", 1, 60.0) == []  # the second lease is live


def test_a_lease_that_expires_while_running_alone_costs_an_attempt(inbox: Inbox) -> None:
    inbox.accept([delivery()])
    held = claim_one(inbox, "first", lease=0.0)
    assert inbox.alone(held)
    taken = retake(inbox, "second", lease=60.0)
    assert (taken.id, taken.attempt) == (held.id, held.attempt + 1)


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
    run_then_close(threads, stores)
    assert Counter(claimed) == Counter(d.id for d in deliveries)
