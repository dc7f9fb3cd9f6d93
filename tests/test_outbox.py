"""The outbox on the events' queue: one claim/lease/retry/dead-letter machine for both, and
outbox rows written by the version before it (their own lease code, a 'sent' status) carried
over by the schema step, on every SQL backend. The shop's sending stories are in
tests/shop/test_outbox.py."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from ichido.config import Settings
from ichido.db import Database, open_database
from ichido.outbox import OUTBOX_SCHEMA, OutboxDispatcher, enqueue


@pytest.fixture
def v1_store(database_url: str) -> Iterator[Database]:
    """A store whose outbox is still at step 1, with rows as that version left them."""
    if database_url.startswith("postgres"):  # the fixture's schema is migrated to the latest
        store = open_database(Settings(database_url=database_url))
        with store.transaction() as tx:
            tx.execute("DROP TABLE ichido_outbox")
            tx.execute("DROP TABLE ichido_outbox_failures")
            tx.execute("DELETE FROM ichido_schema WHERE component = 'outbox'")
        store.close()
    store = open_database(Settings(database_url=database_url), migrate=True,
                          steps=OUTBOX_SCHEMA[:1])
    now = time.time()
    with store.transaction() as tx:
        for key, status, attempts, due in (("sent", "sent", 1, None),
                                           ("fresh", "pending", 0, now),
                                           ("failed", "pending", 2, now - 1),
                                           ("leased", "pending", 1, now + 3600),
                                           ("dead", "dead", 10, None)):
            tx.execute("INSERT INTO ichido_outbox (key, kind, payload, created_at, status,"
                       " attempts, next_attempt_at, sent_at) VALUES (?, 'mail', '{}', ?, ?, ?, ?,"
                       " ?)", (key, now, status, attempts, due, now if status == "sent" else None))
    yield store
    store.close()


def test_rows_of_the_old_outbox_carry_over_to_the_queues_states(v1_store: Database) -> None:
    v1_store.migrate(OUTBOX_SCHEMA)
    with v1_store.reading() as tx:
        rows = dict(tx.execute("SELECT key, status FROM ichido_outbox").fetchall())
        finished = tx.execute("SELECT finished_at FROM ichido_outbox WHERE key = 'sent'"
                              ).fetchone()[0]
    assert rows == {"sent": "processed", "fresh": "pending", "failed": "retrying",
                    "leased": "retrying", "dead": "dead"}
    assert finished is not None
    sent: list[str] = []
    dispatcher = OutboxDispatcher(lambda: v1_store, {"mail": lambda key, _: sent.append(key)})
    assert dispatcher.drain() == 2  # due now: the fresh row and the failed one's retry
    assert sorted(sent) == ["failed", "fresh"]
    assert dispatcher.counts() == {"processed": 3, "retrying": 1, "dead": 1}


def test_a_row_claimed_more_often_than_allowed_goes_dead_without_being_sent(
        database_url: str) -> None:
    """Each crash of a sender mid-send leaves a claim that runs out; past ``max_attempts``
    such claims, sent alone, the row is dead-lettered rather than sent again forever (the
    first, in company, is not charged: I5)."""
    store = open_database(Settings(database_url=database_url), migrate=True,
                          steps=OUTBOX_SCHEMA)
    with store.transaction() as tx:
        enqueue(tx, "mail", "mail:crashes", {"to": "a@b.c"})
    sent: list[Any] = []
    dispatcher = OutboxDispatcher(lambda: store, {"mail": lambda key, _: sent.append(key)},
                                  max_attempts=3, lease_seconds=0.001)
    for attempt in (1, 1, 2, 3):  # four claims whose process died before finishing
        [claim] = dispatcher.queue.claim("crashed", 1, 0.001)
        assert claim.attempt == attempt
        if claim.isolate:
            assert dispatcher.queue.alone(claim)  # sent alone, this time
        time.sleep(0.01)  # past the claim's lease (a lower bound only: nothing races it)
    assert dispatcher.dispatch_once() == 1
    assert sent == []
    with store.reading() as tx:
        status, error = tx.execute("SELECT status, last_error FROM ichido_outbox").fetchone()
    assert status == "dead" and "gave up after 3 attempts" in error
    store.close()
