"""Finishing a claim: the status commits with the handler's writes, or nothing does; a claim
taken over by another owner is fenced off."""

from __future__ import annotations

import pytest

from ichido.errors import LeaseLost
from ichido.queue import Status
from tests.inbox.support import Stores, claim_one, delivery, retake, write_effect
from tests.support import effect_counts


def test_finishing_commits_the_status_with_the_handlers_writes(stores: Stores) -> None:
    a = delivery()
    stores.inbox.accept([a])
    claim = claim_one(stores.queue)
    with stores.queue.finishing(claim, Status.PROCESSED) as tx:
        write_effect(tx, claim)
    record = stores.inbox.get(a.id)
    assert (record.status, record.next_attempt_at) == ("processed", None)
    assert record.finished_at is not None
    assert effect_counts(stores.database) == {a.id: 1}
    assert stores.queue.claim("w", 1, 60.0) == []


def test_finishing_as_ignored(stores: Stores) -> None:
    a = delivery("customer.created")
    stores.inbox.accept([a])
    with stores.queue.finishing(claim_one(stores.queue), Status.IGNORED):
        pass
    assert stores.inbox.get(a.id).status == "ignored"
    stats = stores.inbox.stats()
    assert (stats["processed"], stats["ignored"]) == (1, 1)


def test_finishing_rolls_everything_back_on_an_exception(stores: Stores) -> None:
    a = delivery()
    stores.inbox.accept([a])
    claim = claim_one(stores.queue)
    with pytest.raises(RuntimeError):
        with stores.queue.finishing(claim, Status.PROCESSED) as tx:
            write_effect(tx, claim)
            raise RuntimeError("handler failed")
    record = stores.inbox.get(a.id)
    assert (record.status, record.finished_at) == ("processing", None)
    assert effect_counts(stores.database) == {}
    assert stores.queue.fail(claim, "handler failed", None)  # the claim is still ours


def test_finishing_fences_a_stale_claim(stores: Stores) -> None:
    a = delivery()
    stores.inbox.accept([a])
    stale = claim_one(stores.queue, "slow", lease=0.0)
    fresh = retake(stores.queue, "fast")
    with pytest.raises(LeaseLost):
        with stores.queue.finishing(stale, Status.PROCESSED) as tx:
            write_effect(tx, stale)
    assert stores.inbox.get(a.id).status == "processing"
    assert effect_counts(stores.database) == {}
    with stores.queue.finishing(fresh, Status.PROCESSED) as tx:
        write_effect(tx, fresh)
    with pytest.raises(LeaseLost):  # finished: not even the last owner may finish it again
        with stores.queue.finishing(fresh, Status.PROCESSED) as tx:
            write_effect(tx, fresh)
    assert effect_counts(stores.database) == {a.id: 1}


def test_processing_a_batch_drops_claims_taken_over_and_commits_the_rest(stores: Stores) -> None:
    deliveries = [delivery() for _ in range(3)]
    stores.inbox.accept(deliveries)
    claims = stores.queue.claim("slow", 10, 0.0)
    stolen = retake(stores.queue, "fast")
    with stores.queue.processing(claims) as batch:
        assert sorted(c.id for c in batch.claims) == sorted(
            c.id for c in claims if c.id != stolen.id)
        for claim in batch.claims:
            write_effect(batch.tx, claim)
            batch.finish(claim, Status.PROCESSED)
    kept = {d.id for d in deliveries} - {stolen.id}
    assert effect_counts(stores.database) == dict.fromkeys(kept, 1)
    assert {i: stores.inbox.get(i).status for i in kept} == dict.fromkeys(kept, "processed")
    assert stores.inbox.get(stolen.id).status == "processing"  # still the new owner's
    with stores.queue.finishing(stolen, Status.PROCESSED) as tx:
        write_effect(tx, stolen)
    assert effect_counts(stores.database) == {d.id: 1 for d in deliveries}


def test_an_error_escaping_a_batch_commits_nothing(stores: Stores) -> None:
    a, b = delivery(), delivery()
    stores.inbox.accept([a, b])
    claims = stores.queue.claim("w", 10, 60.0)
    with pytest.raises(RuntimeError):
        with stores.queue.processing(claims) as batch:
            for claim in batch.claims:
                write_effect(batch.tx, claim)
                batch.finish(claim, Status.PROCESSED)
            raise RuntimeError("the worker died mid-batch")
    assert effect_counts(stores.database) == {}
    assert {stores.inbox.get(a.id).status, stores.inbox.get(b.id).status} == {"processing"}
