"""Failing a claim: retrying, then dead, every error kept; dead letters requeued with a fresh
budget and their history."""

from __future__ import annotations

import time

import pytest

from tests.inbox.support import Inbox, claim_one, delivery, retake


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
    assert (record.status, record.attempts, len(record.failures)) == ("retrying", 1, 1)
    assert inbox.requeue_dead() == 2
    assert inbox.requeue_dead() == 0
    claims = inbox.claim("w", 10, 60.0)
    assert sorted(c.id for c in claims) == sorted([*(d.id for d in dead), waiting.id])
    assert {c.attempt for c in claims} == {1}  # a fresh budget for the new round...
    assert {c.id: c.number for c in claims} == {**{d.id: 2 for d in dead}, waiting.id: 1}
    again = next(c for c in claims if c.id == dead[0].id)
    assert inbox.fail(again, "boom again", None)
    record = inbox.get(dead[0].id)  # ...and the history of the old ones, still counting
    assert record.attempts == 2
    assert [(a, e) for a, _, e in record.failures] == [(1, "boom"), (2, "boom again")]
