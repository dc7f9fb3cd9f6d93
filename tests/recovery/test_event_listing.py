"""The inbox's filtered, keyset-paged listing (``Inbox.page``/``count``) and ``requeue``, on
every backend: what replay and the dashboard's events page stand on."""

from __future__ import annotations

from typing import Iterator

import pytest

from ichido.config import Settings
from ichido.event import parse_delivery
from ichido.inbox import EventFilter, Inbox
from ichido.queue.base import Status
from ichido.queue import open_queue
from ichido.schema import open_inbox
from tests.support import make_event

T0 = 1_760_000_000


@pytest.fixture
def inbox(database_url: str) -> Iterator[Inbox]:
    store = open_inbox(Settings(database_url=database_url), migrate=True)
    yield store
    store.close()


def fill(inbox: Inbox) -> list[str]:
    types = ["payment_intent.succeeded", "payment_intent.created", "paymentXintent.created",
             "charge.refunded"]
    bodies = [make_event(types[n % 4], id=f"evt_{n:04d}", created=T0 + n // 3,
                         object_id=f"pi_{n % 5}") for n in range(60)]
    inbox.accept([parse_delivery(b) for b in bodies])
    return [f"evt_{n:04d}" for n in range(60)]


def walk(inbox: Inbox, where: EventFilter, limit: int, **kwargs) -> list[str]:
    seen, cursor = [], None
    while rows := inbox.page(where, after=cursor, limit=limit, **kwargs):
        seen.extend(r.id for r in rows)
        cursor = (rows[-1].created, rows[-1].id)
    return seen


def test_keyset_pages_cover_everything_once_in_order(inbox: Inbox) -> None:
    ids = fill(inbox)
    assert walk(inbox, EventFilter(), 7) == ids
    assert walk(inbox, EventFilter(), 7, newest_first=True) == ids[::-1]
    assert inbox.count() == 60


def test_filters_combine(inbox: Inbox) -> None:
    fill(inbox)
    prefix = EventFilter(types=("payment_intent.*",))  # the _ is not a LIKE wildcard
    assert {r.type for r in inbox.page(prefix)} == {"payment_intent.succeeded",
                                                    "payment_intent.created"}
    assert inbox.count(prefix) == 30
    window = EventFilter(types=("charge.refunded",), since=T0 + 3, until=T0 + 9)
    assert [r.created for r in inbox.page(window)] == [T0 + 3, T0 + 5, T0 + 6, T0 + 7]
    by_object = EventFilter(object_id="pi_2", statuses=(Status.PENDING,))
    assert inbox.count(by_object) == 12
    rows = inbox.page(by_object, bodies=False, limit=3)
    assert len(rows) == 3 and rows[0].body == b"" and rows[0].object_id == "pi_2"
    assert inbox.page(by_object, limit=1)[0].body.startswith(b"{")
    assert inbox.count(EventFilter(statuses=(Status.DEAD,))) == 0


def test_requeue_touches_only_the_statuses_named(inbox: Inbox) -> None:
    fill(inbox)
    queue = open_queue(Settings(), inbox)  # the queue of this inbox, as an app opens it
    claims = queue.claim("w", 60, 60)
    queue.finish({Status.IGNORED: [c for c in claims if c.type == "charge.refunded"],
                  Status.PROCESSED: [c for c in claims if c.type != "charge.refunded"]})
    ignored = [r.id for r in inbox.page(EventFilter(statuses=(Status.IGNORED,)), limit=100)]
    progress: list[int] = []
    done = inbox.requeue(ignored + ["evt_0000"], statuses=[Status.IGNORED],
                         record=lambda tx, n: progress.append(n))
    assert done == len(ignored) == 15 and progress == [15]
    assert inbox.get(ignored[0]).status == Status.RETRYING
    assert inbox.get("evt_0000").status == Status.PROCESSED
    assert {c.id for c in queue.claim("w", 60, 60)} == set(ignored)
