"""Pruning: old finished events lose their bodies, not their ids or counts, so a redelivery
long after is still caught as a duplicate."""

from __future__ import annotations

import time

from ichido.queue import Status
from tests.inbox.support import (DAY, Inbox, age, claim_one, counters, delivery,
                                 write_effect)
from tests.support import effect_counts


def test_prune_empties_only_old_finished_events_and_keeps_their_ids_and_counts(
        inbox: Inbox) -> None:
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
    for d, status in ((processed, "processed"), (ignored, "ignored")):
        tombstone = inbox.get(d.id)
        assert (tombstone.status, tombstone.body, tombstone.failures) == (status, b"", ())
    assert [inbox.get(d.id).status for d in (dead, retrying, pending, recent)] == [
        "dead", "retrying", "pending", "processed"]
    after = inbox.stats()
    assert after == before
    assert (after["processed"], after["ignored"]) == (3, 1)
    assert inbox.prune(30 * DAY) == 0


def test_a_pruned_event_redelivered_is_a_durable_duplicate_and_never_applied_again(
        inbox: Inbox) -> None:
    """Stripe resends for up to 30 days, and on demand: the tombstone outlives any window."""
    event = delivery(object_id="pi_pruned")
    inbox.accept([event])
    claim = claim_one(inbox)
    inbox.fail(claim, "first attempt failed", time.time())
    with inbox.processing([claim_one(inbox)]) as batch:
        [again] = batch.claims
        write_effect(batch.tx, again)
        batch.finish(again, Status.PROCESSED)
    age(inbox, 31 * DAY, event.id)
    assert inbox.prune(30 * DAY) == 1
    assert inbox.get(event.id).failures == ()
    before = counters(inbox)

    assert inbox.accept([event]) == [False]
    assert inbox.claim("w", 10, 60.0) == []
    assert effect_counts(inbox) == {event.id: 1}
    assert counters(inbox) == {**before, "received": before["received"] + 1,
                               "duplicates_durable": before["duplicates_durable"] + 1}
    assert inbox.stats()["processed"] == 1
    assert inbox.requeue([event.id], statuses=("processed",)) == 0  # no body to run again
