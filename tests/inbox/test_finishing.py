"""Finishing a claim: the status commits with the handler's writes, or nothing does; a claim
taken over by another owner is fenced off."""

from __future__ import annotations

import pytest

from ichido.errors import LeaseLost
from ichido.queue import Status
from tests.inbox.support import Inbox, claim_one, delivery, retake, write_effect
from tests.support import effect_counts


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
