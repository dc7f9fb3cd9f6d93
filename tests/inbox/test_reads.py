"""What the admin commands and the dashboard read: stats, listings, single events."""

from __future__ import annotations

from tests.inbox.support import Stores, age, claim_one, delivery


def test_stats_has_every_count_as_an_integer(stores: Stores) -> None:
    stats = stores.inbox.stats()
    for key in ("received", "unique", "duplicates_cache", "duplicates_durable", "processed",
                "ignored", "pending", "processing", "retrying", "dead"):
        assert type(stats[key]) is int and stats[key] == 0
    stores.inbox.accept([delivery(), delivery()])
    claim_one(stores.queue)
    stats = stores.inbox.stats()
    assert (stats["pending"], stats["processing"]) == (1, 1)


def test_list_filters_and_shows_newest_first(stores: Stores) -> None:
    old, middle, new = delivery("charge.succeeded"), delivery("charge.refunded"), delivery()
    for d in (old, middle, new):
        stores.inbox.accept([d])
    age(stores.database, 30, old.id)
    age(stores.database, 20, middle.id)
    assert [r.id for r in stores.inbox.list()] == [new.id, middle.id, old.id]
    assert [r.id for r in stores.inbox.list(limit=2)] == [new.id, middle.id]
    assert [r.id for r in stores.inbox.list(type="charge.refunded")] == [middle.id]
    assert [r.id for r in stores.inbox.list(status="pending", type="charge.succeeded")] == [
        new.id, old.id]
    assert stores.inbox.list(status="dead") == []


def test_get_of_an_unknown_id_is_none(stores: Stores) -> None:
    assert stores.inbox.get("evt_never_stored") is None
