"""Failing a claim: retrying, then dead, every error kept; dead letters requeued with a fresh
budget and their history."""

from __future__ import annotations

import time

import pytest

from tests.inbox.support import Stores, claim_one, delivery, retake


def test_fail_moves_to_retrying_then_dead_and_keeps_every_error(stores: Stores) -> None:
    a = delivery()
    stores.inbox.accept([a])
    retry_at = time.time() - 0.5
    assert stores.queue.fail(claim_one(stores.queue), "first error", retry_at)
    record = stores.inbox.get(a.id)
    assert (record.status, record.next_attempt_at, record.last_error) == (
        "retrying", pytest.approx(retry_at), "first error")
    assert stores.queue.fail(claim_one(stores.queue), "second error", None)
    record = stores.inbox.get(a.id)
    assert (record.status, record.next_attempt_at, record.last_error, record.attempts) == (
        "dead", None, "second error", 2)
    assert [(f[0], f[2]) for f in record.failures] == [(1, "first error"), (2, "second error")]
    assert stores.queue.claim("w", 10, 60.0) == []
    stats = stores.inbox.stats()
    assert (stats["dead"], stats["retrying"], stats["processed"]) == (1, 0, 0)


def test_fail_with_a_stale_claim_changes_nothing(stores: Stores) -> None:
    a = delivery()
    stores.inbox.accept([a])
    stale = claim_one(stores.queue, "slow", lease=0.0)
    fresh = retake(stores.queue, "fast")
    assert stores.queue.fail(stale, "too late", None) is False
    record = stores.inbox.get(a.id)
    assert (record.status, record.failures, record.last_error) == ("processing", (), None)
    assert stores.queue.fail(fresh, "real failure", None) is True


def test_requeue_dead_by_id_or_all(stores: Stores) -> None:
    dead = [delivery() for _ in range(3)]
    waiting = delivery()
    stores.inbox.accept(dead)
    for _ in dead:
        assert stores.queue.fail(claim_one(stores.queue), "boom", None)
    stores.inbox.accept([waiting])

    assert stores.inbox.requeue_dead([waiting.id]) == 0  # only dead letters
    assert stores.inbox.requeue_dead([]) == 0
    assert stores.inbox.requeue_dead([dead[0].id]) == 1
    record = stores.inbox.get(dead[0].id)
    assert (record.status, record.attempts, len(record.failures)) == ("retrying", 1, 1)
    assert stores.inbox.requeue_dead() == 2
    assert stores.inbox.requeue_dead() == 0
    claims = stores.queue.claim("w", 10, 60.0)
    assert sorted(c.id for c in claims) == sorted([*(d.id for d in dead), waiting.id])
    assert {c.attempt for c in claims} == {1}  # a fresh budget for the new round...
    assert {c.id: c.number for c in claims} == {**{d.id: 2 for d in dead}, waiting.id: 1}
    again = next(c for c in claims if c.id == dead[0].id)
    assert stores.queue.fail(again, "boom again", None)
    record = stores.inbox.get(dead[0].id)  # ...and the history of the old ones, still counting
    assert record.attempts == 2
    assert [(a, e) for a, _, e in record.failures] == [(1, "boom"), (2, "boom again")]
