"""Stored thin events are told from snapshots by their type (``v1.``/``v2.``): the inbox's
filter, ``ichido replay --shape`` and the dashboard's list select by shape."""

from __future__ import annotations

from typing import Iterator

import pytest

from ichido.config import Settings
from ichido.dashboard.reading import ListFilter, events_page
from ichido.event import parse_delivery
from ichido.inbox import EventFilter, Inbox, sql_inbox
from ichido.queue.base import Status
from ichido.recovery.replay import Replay
from ichido.schema import open_inbox
from tests.support import make_event
from tests.thin.support import make_thin


@pytest.fixture
def inbox(database_url: str) -> Iterator[Inbox]:
    store = open_inbox(Settings(database_url=database_url), migrate=True)
    yield store
    store.close()


def test_events_are_selected_by_shape(inbox: Inbox) -> None:
    snapshots = [make_event("payment_intent.succeeded") for _ in range(3)]
    thins = [make_thin("v1.payment_intent.succeeded"), make_thin("v2.core.event_destination.ping")]
    inbox.accept([parse_delivery(b) for b in [*snapshots, *thins]])
    log = sql_inbox(inbox, "test")
    thin_ids = {parse_delivery(b).id for b in thins}
    assert {r.id for r in log.page(EventFilter(shape="thin"), limit=100)} == thin_ids
    assert log.count(EventFilter(shape="snapshot")) == 3
    listed = events_page(log, ListFilter.from_query({"shape": "thin"}), limit=50)
    assert {r.id for r in listed.rows} == thin_ids
    assert ListFilter.from_query({"shape": "<b>"}).shape == ""  # anything else: no filter


def test_a_replay_by_shape_requeues_only_that_shape(inbox: Inbox) -> None:
    bodies = [make_event("charge.refunded"), make_thin("v1.charge.refunded")]
    deliveries = [parse_delivery(b) for b in bodies]
    inbox.accept(deliveries)
    log = sql_inbox(inbox, "test")
    assert len(log.page(limit=10)) == 2  # stored (SQLite's intake settled)
    with log.database.transaction() as tx:
        tx.execute("UPDATE ichido_events SET status = ?", (Status.DEAD.value,))
    job = Replay.start(log, EventFilter(statuses=("dead",), shape="thin"))
    done = job.run()
    assert done.requeued == 1 and done.filter["shape"] == "thin"
    statuses = {r.id: r.status for r in log.page(limit=10)}
    assert statuses == {deliveries[0].id: "dead", deliveries[1].id: "retrying"}  # requeued
