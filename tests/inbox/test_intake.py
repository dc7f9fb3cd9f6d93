"""SQLite's intake: where the receiver writes, so that a handler holding the store's write lock
never makes it wait. Settling moves the intake into the events table exactly once, counters
included, even when it dies between the store's commit and the intake's clean-up."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from ichido.config import Settings
from ichido.db import open_database
from ichido.errors import StorageUnavailable
from ichido.event import parse_delivery
from ichido.inbox.sqlite import SqliteInbox, intake_path
from ichido.schema import open_inbox
from tests.support import make_event


class Died(BaseException):
    """The process dies here (not an Exception: nothing catches it)."""


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[SqliteInbox]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}")
    database = open_database(settings)
    inbox = open_inbox(settings, database)
    assert isinstance(inbox, SqliteInbox)
    yield inbox
    inbox.close()
    database.close()


def deliveries(count: int, type: str = "charge.succeeded"):
    return [parse_delivery(make_event(type)) for _ in range(count)]


def events_in_store(inbox: SqliteInbox) -> int:
    with inbox.database.reading() as tx:
        return tx.execute("SELECT count(*) FROM ichido_events").fetchone()[0]


def test_the_intake_is_named_after_the_store_s_full_file_name() -> None:
    assert intake_path("data/ichido.db") == "data/ichido.db-intake"
    assert intake_path("/srv/events.sqlite3") == "/srv/events.sqlite3-intake"
    assert intake_path("x") != intake_path("x.db")  # they once shared x.intake.db


def test_accepted_events_wait_in_the_intake_and_settle_once_with_their_counts(
        inbox: SqliteInbox) -> None:
    first = deliveries(30)
    assert inbox.accept(first, cache_hits=4) == [True] * 30
    assert inbox.accept(first[:10] + deliveries(5)) == [False] * 10 + [True] * 5
    before = inbox.stats()
    assert (before["received"], before["unique"], before["duplicates_cache"],
            before["duplicates_durable"], before["pending"]) == (49, 35, 4, 10, 35)
    assert events_in_store(inbox) == 0
    assert inbox.get(first[0].id).status == "pending"  # readable while in the intake

    assert inbox.settle_intake() == 35
    assert inbox.settle_intake() == 0
    assert events_in_store(inbox) == 35
    assert inbox.stats() == before  # nothing counted twice, nothing lost on the way
    assert inbox.accept(first[:3]) == [False] * 3  # duplicates of settled events, too
    assert inbox.stats()["duplicates_durable"] == 13


def test_a_settle_that_dies_before_the_clean_up_moves_nothing_twice(
        inbox: SqliteInbox, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox.accept(deliveries(20), cache_hits=2)
    expected = inbox.stats()

    def die(*args: object) -> None:
        raise Died

    with monkeypatch.context() as patch:  # the store has committed; the intake still has all
        patch.setattr(inbox, "_clean_up", die)
        with pytest.raises(Died):
            inbox.settle_intake()
    assert events_in_store(inbox) == 20
    assert inbox.stats() == expected
    assert inbox.settle_intake() == 0  # the high-water mark says: already moved
    assert inbox.stats() == expected
    with sqlite3.connect(intake_path(inbox.database.path)) as intake:
        assert intake.execute("SELECT count(*) FROM ichido_intake").fetchone() == (0,)


def test_settling_without_waiting_gives_way_to_a_handler_holding_the_store(
        inbox: SqliteInbox) -> None:
    inbox.accept(deliveries(3))
    handler = sqlite3.connect(inbox.database.path, isolation_level=None)
    try:
        handler.execute("BEGIN IMMEDIATE")
        assert inbox.settle_intake(wait=False) == 0  # a listing does not wait for it
        assert inbox.stats()["pending"] == 3 and events_in_store(inbox) == 0
    finally:
        handler.execute("ROLLBACK")
        handler.close()
    assert inbox.settle_intake(wait=False) == 3


def test_a_store_that_cannot_take_the_intake_is_a_storage_error_and_loses_nothing(
        inbox: SqliteInbox) -> None:
    batch = deliveries(4)
    inbox.accept(batch)
    with inbox.database.transaction() as tx:  # a store refusing writes, as a full disk would
        tx.execute("CREATE TRIGGER refuse BEFORE INSERT ON ichido_events"
                   " BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(StorageUnavailable):
        inbox.settle_intake()
    assert inbox.stats()["pending"] == 4  # still in the intake
    with inbox.database.transaction() as tx:
        tx.execute("DROP TRIGGER refuse")
    assert inbox.settle_intake() == 4
    assert {inbox.get(d.id).status for d in batch} == {"pending"}
