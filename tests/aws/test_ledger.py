"""The Lambda worker's ledger (``ichido.aws.ledger.Ledger``), one contract on every engine that
keeps one: the processed marker commits with the handlers' writes or not at all, a second copy
is a counted duplicate, failures are kept until the event is dead, and a finished event is never
touched again."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from ichido.aws.dynamodb_ledger import DynamoLedger
from ichido.aws.ledger import Ledger, SqlLedger
from ichido.config import Settings
from ichido.db import open_database
from ichido.db.base import Database
from ichido.db.dynamodb import DynamoDatabase
from ichido.db.sql import SqlDatabase
from ichido.inbox import Inbox, process_shard
from ichido.schema import open_inbox
from ichido.queue.base import Status
from tests.inbox.support import delivery
from tests.support import migrate_effects


class Engine:
    """The ledger of one store, the inbox that reads what it wrote, and the handlers' effects
    (a row of the effects table, or an item of ichido's table on DynamoDB)."""

    def __init__(self, url: str) -> None:
        settings = Settings(database_url=url)
        if not url.startswith("dynamodb:"):
            migrate_effects(url)
        self.database: Database = open_database(settings)
        self.inbox: Inbox = open_inbox(settings, self.database)
        self.ledger: Ledger
        if isinstance(self.database, DynamoDatabase):
            self.ledger = DynamoLedger(self.database, shard=process_shard())
        else:
            assert isinstance(self.database, SqlDatabase)
            self.ledger = SqlLedger(self.database, process_shard())

    def write_effect(self, tx, event_id: str) -> None:
        if isinstance(self.database, DynamoDatabase):
            tx.put(self.database.table, {"pk": f"effect:{event_id}", "sk": "effect"})
        else:
            tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
                       (event_id, "t", 1))

    def effects(self, *event_ids: str) -> list[str]:
        if isinstance(self.database, DynamoDatabase):
            return [i for i in event_ids if self.database.get(
                self.database.table, {"pk": f"effect:{i}", "sk": "effect"}) is not None]
        with self.database.reading() as tx:
            return [row[0] for row in tx.execute("SELECT event_id FROM effects").fetchall()]

    def close(self) -> None:
        self.inbox.close()
        self.database.close()


@pytest.fixture
def engine(engine_url: str) -> Iterator[Engine]:
    opened = Engine(engine_url)
    yield opened
    opened.close()


def counts(engine: Engine) -> tuple[int, int, int]:
    stats = engine.inbox.stats()
    return stats["received"], stats["unique"], stats["duplicates_durable"]


def test_an_event_applies_once_and_its_copy_is_a_counted_duplicate(engine: Engine) -> None:
    event = delivery()
    with engine.ledger.applying(event, Status.PROCESSED, 1, time.time()) as tx:
        assert tx is not None
        engine.write_effect(tx, event.id)
    record = engine.inbox.get(event.id)
    assert record is not None and (record.status, record.attempts) == ("processed", 1)
    with engine.ledger.applying(event, Status.PROCESSED, 2, time.time()) as again:
        assert again is None
    assert engine.effects(event.id) == [event.id]
    assert counts(engine) == (2, 1, 1)


def test_a_handler_that_raises_leaves_neither_marker_nor_effect(engine: Engine) -> None:
    event = delivery()
    with pytest.raises(RuntimeError):
        with engine.ledger.applying(event, Status.PROCESSED, 1, time.time()) as tx:
            assert tx is not None
            engine.write_effect(tx, event.id)
            raise RuntimeError("handler failed")
    assert engine.inbox.get(event.id) is None
    assert engine.effects(event.id) == []
    with engine.ledger.applying(event, Status.PROCESSED, 2, time.time()) as tx:
        assert tx is not None  # not a duplicate: nothing was applied


def test_failures_are_kept_until_dead_and_a_later_attempt_still_applies(
        engine: Engine) -> None:
    event = delivery()
    engine.ledger.record_failure(event, 1, "first error", dead=False)
    record = engine.inbox.get(event.id)
    assert record is not None and (record.status, record.last_error) == (
        "retrying", "first error")
    engine.ledger.record_failure(event, 2, "second error", dead=True)
    record = engine.inbox.get(event.id)
    assert record is not None and (record.status, record.attempts) == ("dead", 2)
    assert [(f[0], f[2]) for f in record.failures] == [(1, "first error"), (2, "second error")]
    with engine.ledger.applying(event, Status.PROCESSED, 3, time.time()) as tx:
        assert tx is not None  # a dead letter redriven: applied now
    record = engine.inbox.get(event.id)
    assert record is not None and record.status == "processed"


def test_a_late_failure_never_touches_a_finished_event(engine: Engine) -> None:
    event = delivery()
    with engine.ledger.applying(event, Status.IGNORED, 1, time.time()):
        pass
    engine.ledger.record_failure(event, 2, "too late", dead=True)
    record = engine.inbox.get(event.id)
    assert record is not None
    assert (record.status, record.last_error, record.failures) == ("ignored", None, ())


def test_count_adds_the_receivers_cache_hits(engine: Engine) -> None:
    engine.ledger.count({"received": 3, "duplicates_cache": 3})
    stats = engine.inbox.stats()
    assert (stats["received"], stats["duplicates_cache"], stats["unique"]) == (3, 3, 0)
