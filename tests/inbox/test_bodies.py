"""SQLite keeps event bodies apart from the queue's rows (``ichido_bodies``), so a claim and a
finish rewrite a row of a few hundred bytes, not one that fills a page with its body."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from ichido.config import Settings
from ichido.db import open_database
from ichido.db.sqlite import SqliteDatabase
from ichido.event import parse_delivery
from ichido.inbox.intake import INTAKE_SCHEMA
from ichido.inbox.sqlite import STORE_SCHEMA, SqliteInbox, intake_path
from ichido.queue import Status, open_queue
from ichido.schema import CORE_SCHEMA, open_inbox
from tests.inbox.support import DAY, age, claim_one
from tests.support import make_event


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def inbox(store: Path) -> Iterator[SqliteInbox]:
    opened = _open(store)
    yield opened
    opened.close()
    opened.database.close()


def _open(store: Path) -> SqliteInbox:
    settings = Settings(database_url=f"sqlite:///{store}")
    inbox = open_inbox(settings, open_database(settings))
    assert isinstance(inbox, SqliteInbox)
    return inbox


def _columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def test_the_queue_rows_hold_no_body_and_every_read_still_gives_it(
        inbox: SqliteInbox, store: Path) -> None:
    delivery = parse_delivery(make_event("charge.succeeded"))
    inbox.accept([delivery])
    inbox.settle_intake()
    assert "body" not in _columns(store, "ichido_events")
    assert _columns(store, "ichido_bodies") == {"id", "body"}

    queue = open_queue(Settings(), inbox)
    claim = claim_one(queue)
    assert claim.body == delivery.body
    with queue.finishing(claim, Status.PROCESSED):
        pass
    assert inbox.get(delivery.id).body == delivery.body
    assert [r.body for r in inbox.page()] == [delivery.body]
    assert [r.body for r in inbox.page(bodies=False)] == [b""]


def test_a_store_from_before_moves_its_bodies_out_and_keeps_its_tombstones(store: Path) -> None:
    """A store made by an ichido whose rows held their bodies: the step moves every body out
    once; a pruned event stays a tombstone, with nothing to run again."""
    database = SqliteDatabase(str(store))
    database.migrate([*CORE_SCHEMA, *STORE_SCHEMA[:-1]])  # everything but the bodies' step
    kept, pruned = (parse_delivery(make_event("charge.succeeded")) for _ in range(2))
    with database.transaction() as tx:
        for d, body in ((kept, kept.body), (pruned, b"")):
            tx.execute("INSERT INTO ichido_events (id, type, created, object_id, body,"
                       " received_at, status, finished_at) VALUES (?, ?, ?, ?, ?, 0, ?, 0)",
                       (d.id, d.type, d.created, d.object_id, body, "processed"))
    database.close()
    SqliteDatabase(intake_path(str(store))).migrate(INTAKE_SCHEMA)

    inbox = _open(store)
    try:
        assert "body" not in _columns(store, "ichido_events")
        assert inbox.get(kept.id).body == kept.body
        assert inbox.get(pruned.id).body == b""
        assert inbox.requeue([kept.id, pruned.id], statuses=("processed",)) == 1
        assert claim_one(open_queue(Settings(), inbox)).body == kept.body
    finally:
        inbox.close()
        inbox.database.close()


def test_a_pruned_event_put_back_in_the_intake_does_not_get_its_body_back(
        inbox: SqliteInbox, store: Path) -> None:
    """An intake restored from before a prune holds the body again: the settle stores only
    the events the store lacks, so the tombstone stays one (and is not run again)."""
    delivery = parse_delivery(make_event("charge.succeeded"))
    inbox.accept([delivery])
    inbox.settle_intake()
    queue = open_queue(Settings(), inbox)
    with queue.finishing(claim_one(queue), Status.PROCESSED):
        pass
    age(inbox.database, 31 * DAY, delivery.id)
    assert inbox.prune(30 * DAY) == 1
    with sqlite3.connect(intake_path(str(store))) as intake:  # the old intake, put back
        intake.execute("INSERT INTO ichido_intake (id, batch, type, created, object_id, body,"
                       " received_at) VALUES (?, 1, ?, ?, ?, ?, 0)",
                       (delivery.id, delivery.type, delivery.created, delivery.object_id,
                        delivery.body))
    later = parse_delivery(make_event("charge.succeeded"))
    inbox.accept([later])  # a settle to run, which looks at the old batches too
    assert inbox.settle_intake() == 1
    assert inbox.get(delivery.id).body == b""
    assert [c.id for c in queue.claim("w", 10, 60.0)] == [later.id]
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT id FROM ichido_bodies").fetchall() == [(later.id,)]
