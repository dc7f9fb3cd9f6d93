"""The inbox every engine has, DynamoDB's included: the receiver's durable write (each id stored
once, copies flagged) and the operator's commands over what it stored (``AdminLog``: ``ichido
events``, ``dlq``, ``stats``). The SQL engines' fuller contract (claims, finishing, prune, the
counters of every copy) is in the other modules here."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from ichido.config import Settings
from ichido.db import open_database
from ichido.event import Delivery
from ichido.inbox import Inbox
from ichido.schema import open_inbox
from ichido.inbox.seams import AdminLog
from tests.inbox.support import delivery

STATS_KEYS = ("received", "unique", "duplicates_cache", "duplicates_durable", "duplicates_twin",
              "processed",
              "ignored", "stale", "pending", "processing", "retrying", "dead", "reconciled",
              "replayed", "alerts")


@pytest.fixture
def inbox(engine_url: str) -> Iterator[Inbox]:
    settings = Settings(database_url=engine_url)
    database = open_database(settings)
    opened = open_inbox(settings, database)
    yield opened
    opened.close()
    database.close()


def admin(inbox: Inbox) -> AdminLog:
    """The inbox as the operator's commands see it (the type checker's view, made explicit)."""
    return inbox


async def accept_on_a_loop(inbox: Inbox, deliveries: list[Delivery]) -> list[bool]:
    """As the receiver's group commit writes: on its event loop, released with it."""
    try:
        return await inbox.accept_async(deliveries)
    finally:
        await inbox.aclose()


def test_the_durable_write_stores_each_id_once_and_flags_its_copies(inbox: Inbox) -> None:
    a, b = delivery(object_id="ch_1"), delivery()
    assert inbox.accept([a, b, a]) == [True, True, False]
    assert asyncio.run(accept_on_a_loop(inbox, [b, delivery()])) == [False, True]
    record = admin(inbox).get(a.id)
    assert record is not None
    assert (record.id, record.type, record.created, record.object_id) == (
        a.id, a.type, a.created, "ch_1")
    assert (record.status, record.attempts, record.body, record.failures) == (
        "pending", 0, a.body, ())


def test_stats_name_every_count_as_an_integer(inbox: Inbox) -> None:
    stats = admin(inbox).stats()
    assert set(stats) == set(STATS_KEYS)
    assert all(type(value) is int and value == 0 for value in stats.values())
    inbox.accept([delivery(), delivery()])
    assert admin(inbox).stats()["pending"] == 2


def test_list_filters_by_status_and_type(inbox: Inbox) -> None:
    charge, refund = delivery("charge.succeeded"), delivery("charge.refunded")
    inbox.accept([charge, refund])
    log = admin(inbox)
    assert {r.id for r in log.list()} == {charge.id, refund.id}
    assert [r.id for r in log.list(type="charge.refunded")] == [refund.id]
    assert [r.id for r in log.list(status="pending", type="charge.succeeded")] == [charge.id]
    assert len(log.list(limit=1)) == 1
    assert log.list(status="dead") == []


def test_get_of_an_unknown_id_is_none(inbox: Inbox) -> None:
    assert admin(inbox).get("evt_never_stored") is None


def test_requeue_dead_moves_nothing_that_is_not_dead(inbox: Inbox) -> None:
    waiting = delivery()
    inbox.accept([waiting])
    log = admin(inbox)
    assert log.requeue_dead([waiting.id]) == 0
    assert log.requeue_dead([]) == 0
    assert log.requeue_dead() == 0
    record = log.get(waiting.id)
    assert record is not None and record.status == "pending"
