"""What the admin commands and the dashboard read: stats, listings, single events."""

from __future__ import annotations

from tests.inbox.support import Inbox, age, claim_one, delivery


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
