"""The receiver's write path on the embedded store: batches go into the intake file, written on
the event loop while SQLite answers at once, and on the writer thread when another writer holds
the intake's lock, so a lock never stalls the loop and no delivery is lost or answered before it
is stored (I1). The store's own lock, which handlers hold, is never waited for (issue 16.2)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from ichido.config import Settings
from ichido.event import parse_delivery
from ichido.db.sqlite import SqliteDatabase, path_from_url
from ichido.inbox.sqlite import SqliteInbox, intake_path
from tests.support import open_store

from tests.support import (
    asgi_client,
    effect_counts,
    event_id_of,
    in_process_app,
    make_event,
    post_async,
    record_effect,
    run_async,
)


def test_a_locked_intake_waits_off_the_event_loop_and_then_stores_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    app = in_process_app(Settings(database_url=url, webhook_secrets=("whsec_test_0123456789abcdef",)))
    app.on("payment_intent.succeeded")(record_effect)
    body = make_event("payment_intent.succeeded")
    other = sqlite3.connect(intake_path(path_from_url(url)), isolation_level=None)

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with asgi_client(app) as client:
            await post_async(client, make_event("charge.succeeded"))  # store opened, inline
            other.execute("BEGIN IMMEDIATE")  # another receiver process holds the intake
            pending = asyncio.create_task(post_async(client, body))
            await asyncio.sleep(0.3)  # the loop runs on meanwhile: this coroutine is on it
            assert not pending.done(), "answered while the intake was locked"
            other.execute("COMMIT")
            first = await pending
            again = await post_async(client, body)
        await app.shutdown()
        return first, again

    first, again = run_async(scenario)
    other.close()
    assert first.status_code == 200 and first.json()["status"] == "accepted", first.text
    assert again.json()["status"] == "duplicate"
    app.worker().drain()
    assert effect_counts(app.database) == {event_id_of(body): 1}


def test_a_handler_holding_the_store_never_delays_an_answer(tmp_path: Path) -> None:
    """A handler's transaction holds the store's write lock for as long as the handler runs
    (here: a writer that never lets go while the deliveries arrive). Deliveries are still
    stored and answered at once, new ones and duplicates alike, and applied once after."""
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    app = in_process_app(Settings(database_url=url, webhook_secrets=("whsec_test_0123456789abcdef",)))
    app.on("payment_intent.succeeded")(record_effect)
    bodies = [make_event("payment_intent.succeeded") for _ in range(20)]
    handler = sqlite3.connect(path_from_url(url), isolation_level=None)

    async def scenario() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            await post_async(client, make_event("charge.succeeded"))  # store opened
            handler.execute("BEGIN IMMEDIATE")  # a slow handler's transaction
            handler.execute("INSERT INTO ichido_counters (shard, name, value)"
                            " VALUES ('handler', 'x', 1)")
            answers = await asyncio.wait_for(asyncio.gather(
                *(post_async(client, body) for body in bodies + bodies[:5])), timeout=30)
            handler.execute("ROLLBACK")
        await app.shutdown()
        return answers

    answers = run_async(scenario)
    handler.close()
    assert [a.status_code for a in answers] == [200] * 25
    assert {a.json()["status"] for a in answers[20:]} == {"duplicate"}
    assert app.inbox.stats()["pending"] == 21
    app.worker().drain()
    assert effect_counts(app.database) == {event_id_of(b): 1 for b in bodies}


@pytest.mark.timeout(8)  # waiting for the 60 s busy timeout instead of declining fails here
def test_accept_nowait_on_a_locked_intake_declines_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    open_store(url).close()  # the schema, as any process would set it up
    database = SqliteDatabase(path_from_url(url), busy_timeout=60)
    inbox = SqliteInbox(database, shard="test")
    other = sqlite3.connect(intake_path(path_from_url(url)), isolation_level=None)
    delivery = parse_delivery(make_event("payment_intent.succeeded"))
    try:
        other.execute("BEGIN IMMEDIATE")
        assert inbox.accept_nowait([delivery], cache_hits=2) is None
        other.execute("COMMIT")
        assert inbox.get(delivery.id) is None
        assert inbox.stats()["received"] == 0
        assert inbox.accept_nowait([delivery], cache_hits=2) == [True]  # the connection is usable
        assert inbox.stats()["received"] == 3
    finally:
        other.close()
        inbox.close()
        database.close()


def test_checkpoints_keep_the_write_ahead_log_short(tmp_path: Path) -> None:
    """The loop's connection never checkpoints (an fsync on the loop would stall every request
    in flight); the writer thread does, while writing goes on without a pause, as under load.
    Without checkpoints, or with passive ones alone (the WAL then never starts afresh), it
    would hold every event ever received.

    Deterministic on a loaded machine: each checkpoint has a whole batch written alongside it,
    then the writes wait (bounded) for it to end, so the WAL's length depends on what the
    checkpoints do, not on when the machine lets their thread run."""
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    open_store(url).close()  # the schema, as any process would set it up
    database = SqliteDatabase(path_from_url(url))
    inbox = SqliteInbox(database, shard="test", checkpoint_rows=50)

    # Built beforehand, so that batches are written back to back, as under load.
    batches = [[parse_delivery(make_event(
        "payment_intent.succeeded", obj={"id": f"pi_{batch}_{i}", "note": "x" * 1500}))
        for i in range(50)] for batch in range(120)]

    async def checkpoint_done() -> None:
        deadline = time.monotonic() + 60  # for a hung checkpoint only
        while inbox._checkpointing:
            assert time.monotonic() < deadline, "the writer thread's checkpoint never ended"
            await asyncio.sleep(0.001)

    async def receive() -> int:  # as the receiver does: on the loop, or on the writer thread
        written = 0
        for deliveries in batches:
            pending = inbox._checkpointing  # handed to the writer thread, not finished
            assert all(await inbox.accept_async(deliveries))
            written += sum(len(d.body) for d in deliveries)
            if pending and inbox._checkpointing:  # a batch went in alongside it: now let it end
                await checkpoint_done()
        return written

    try:
        written = run_async(receive)
        wal = os.path.getsize(intake_path(path_from_url(url)) + "-wal")
        assert inbox.stats()["unique"] == 6000
        # Unbounded, the WAL would be about twice the bytes written (pages, indexes).
        assert wal < written / 2, f"WAL of {wal} bytes after {written} bytes of events"
    finally:
        inbox.close()
        database.close()
