"""Pruning: old finished events lose their bodies, not their ids or counts, so a redelivery
long after is still caught as a duplicate."""

from __future__ import annotations

import time

from ichido.queue import Status
from tests.inbox.support import (DAY, Stores, age, claim_one, counters, delivery,
                                 write_effect)
from tests.support import effect_counts


def test_prune_empties_only_old_finished_events_and_keeps_their_ids_and_counts(
        stores: Stores) -> None:
    processed, ignored, dead, retrying, pending, recent = (delivery() for _ in range(6))
    for d, status in ((processed, Status.PROCESSED), (ignored, Status.IGNORED),
                      (recent, Status.PROCESSED)):
        stores.inbox.accept([d])
        with stores.queue.finishing(claim_one(stores.queue), status):
            pass
    stores.inbox.accept([dead])
    stores.queue.fail(claim_one(stores.queue), "boom", None)
    stores.inbox.accept([retrying])
    stores.queue.fail(claim_one(stores.queue), "boom", time.time() + 3600)
    stores.inbox.accept([pending])
    age(stores.database, 31 * DAY, processed.id, ignored.id, dead.id, retrying.id, pending.id)
    before = stores.inbox.stats()

    assert stores.inbox.prune(40 * DAY) == 0
    assert stores.inbox.prune(30 * DAY) == 2
    for d, status in ((processed, "processed"), (ignored, "ignored")):
        tombstone = stores.inbox.get(d.id)
        assert (tombstone.status, tombstone.body, tombstone.failures) == (status, b"", ())
    assert [stores.inbox.get(d.id).status for d in (dead, retrying, pending, recent)] == [
        "dead", "retrying", "pending", "processed"]
    after = stores.inbox.stats()
    assert after == before
    assert (after["processed"], after["ignored"]) == (3, 1)
    assert stores.inbox.prune(30 * DAY) == 0


def test_a_pruned_event_redelivered_is_a_durable_duplicate_and_never_applied_again(
        stores: Stores) -> None:
    """Stripe resends for up to 30 days, and on demand: the tombstone outlives any window."""
    event = delivery(object_id="pi_pruned")
    stores.inbox.accept([event])
    claim = claim_one(stores.queue)
    stores.queue.fail(claim, "first attempt failed", time.time())
    with stores.queue.processing([claim_one(stores.queue)]) as batch:
        [again] = batch.claims
        write_effect(batch.tx, again)
        batch.finish(again, Status.PROCESSED)
    age(stores.database, 31 * DAY, event.id)
    assert stores.inbox.prune(30 * DAY) == 1
    assert stores.inbox.get(event.id).failures == ()
    before = counters(stores.inbox)

    assert stores.inbox.accept([event]) == [False]
    assert stores.queue.claim("w", 10, 60.0) == []
    assert effect_counts(stores.database) == {event.id: 1}
    assert counters(stores.inbox) == {**before, "received": before["received"] + 1,
                               "duplicates_durable": before["duplicates_durable"] + 1}
    assert stores.inbox.stats()["processed"] == 1
    assert stores.inbox.requeue([event.id], statuses=("processed",)) == 0  # no body to run again
