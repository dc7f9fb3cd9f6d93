"""Group commit never strands a delivery: one submitted at any moment of a flusher's life is
stored and answered, and shutdown ends within its bound whatever is still pending."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path

import httpx
import psycopg
import pytest

from ichido.config import Settings
from ichido.errors import StorageUnavailable
from ichido.event import parse_delivery
from ichido.group_commit import GroupCommit, Outcome
from ichido.db import open_database
from ichido.schema import open_inbox
from ichido.seen import open_seen

from tests.support import ServerProcess, make_event, run_async, wait_until


def _group(url: str, **options: float) -> GroupCommit:
    settings = Settings(database_url=url)
    database = open_database(settings)
    inbox = open_inbox(settings, database)
    return GroupCommit(inbox, open_seen(settings, database.store_id()), **options)


async def _answered_or_stranded(group: GroupCommit, client: asyncio.Future) -> bool:
    """Drive the loop until ``client`` is answered (True) or a delivery waits in ``_pending``
    with no flusher left to take it (False: nothing could ever answer it). No clock involved."""
    while not client.done():
        running = [f for f in group._flushers if not f.done()]
        if running:
            await asyncio.wait(running)
        elif group._pending and not group._flushers:
            return False
        else:
            await asyncio.sleep(0)  # one loop turn: callbacks, the client's next step
    return True


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_a_delivery_submitted_as_the_last_flusher_returns_is_still_stored(
        tmp_path: Path, in_flight: int) -> None:
    """Senders that post their next delivery the moment the previous one is answered land in
    the loop turn where every flusher has returned but its done-callback has not yet run."""
    group = _group(f"sqlite:///{tmp_path / 'race.db'}", in_flight=in_flight)

    async def sender() -> list[Outcome]:
        first = await group.submit(parse_delivery(make_event()))
        return [first, await group.submit(parse_delivery(make_event()))]

    async def scenario() -> tuple[bool, list[list[Outcome]] | None]:
        # one sender per flusher slot, so that every slot is taken when the second posts come
        clients = asyncio.gather(*(sender() for _ in range(in_flight)))
        answered = await _answered_or_stranded(group, clients)
        outcomes = clients.result() if answered else None
        if not answered:
            clients.cancel()
        await group.close()
        return answered, outcomes

    answered, outcomes = run_async(scenario)
    assert answered, "a delivery waits in _pending with no flusher to store it"
    assert outcomes == [[Outcome.ACCEPTED] * 2] * in_flight
    group.inbox.close()


@pytest.mark.postgres
@pytest.mark.timeout(60)  # the old close() waits for the lock for ever
def test_shutdown_ends_within_its_bound_and_fails_what_it_could_not_store(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A batch stuck behind another session's row lock (as behind a hung database) is
    answered 503 when the bound passes, and the log says so; nothing is answered 200."""
    delivery = parse_delivery(make_event())
    group = _group(postgres_url, shutdown_timeout=0.2)
    blocker = psycopg.connect(postgres_url)  # another session holds the table, uncommitted
    blocker.execute("LOCK TABLE ichido_events IN ACCESS EXCLUSIVE MODE")

    async def scenario() -> BaseException | Outcome:
        stuck = asyncio.get_running_loop().create_task(group.submit(delivery))
        await asyncio.sleep(0)  # submitted: its flusher now waits on the lock, or soon will
        await group.close()
        try:
            return await stuck
        except StorageUnavailable as exc:
            return exc

    try:
        with caplog.at_level(logging.ERROR, logger="ichido.receiver"):
            result = run_async(scenario)
    finally:
        blocker.rollback()
        blocker.close()
        group.inbox.close()
    assert isinstance(result, StorageUnavailable), result
    assert result.code == "shutting_down"
    assert any("not stored" in r.getMessage() for r in caplog.records)


def test_a_delivery_after_close_is_refused_not_left_waiting(tmp_path: Path) -> None:
    group = _group(f"sqlite:///{tmp_path / 'closed.db'}")

    async def scenario() -> StorageUnavailable:
        await group.close()
        with pytest.raises(StorageUnavailable) as caught:
            await group.submit(parse_delivery(make_event()))
        return caught.value

    assert run_async(scenario).code == "shutting_down"
    group.inbox.close()


@pytest.mark.postgres
@pytest.mark.timeout(90)
def test_sigterm_ends_the_server_within_its_bound_while_a_write_hangs(
        postgres_url: str, postgres_admin: psycopg.Connection) -> None:
    """`ichido serve` with a delivery stuck in storage: SIGTERM ends it after the shutdown
    bound, the sender gets a 5xx or a closed connection (never a 200), and the log says why."""
    blocker = psycopg.connect(postgres_url)
    server = ServerProcess(postgres_url, app=None, workers=0,
                           env={"ICHIDO_SHUTDOWN_TIMEOUT": "0.5"})
    answers: list[object] = []
    try:
        blocker.execute("LOCK TABLE ichido_events IN ACCESS EXCLUSIVE MODE")
        body = make_event()

        def send() -> None:
            try:
                answers.append(server.post(body, timeout=60).status_code)
            except httpx.HTTPError as exc:
                answers.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        wait_until(lambda: _waiting_on_lock(postgres_admin, blocker.info.backend_pid),
                   message="the INSERT to wait on the lock")
        server.proc.send_signal(signal.SIGTERM)
        exit_code = server.proc.wait(45)  # old code: waits on the lock for ever
        sender.join(45)
    finally:
        blocker.rollback()
        blocker.close()
        server.kill()
    assert exit_code is not None
    assert answers and answers[0] != 200, answers
    assert "not stored" in server.output()


def _waiting_on_lock(admin: psycopg.Connection, blocker_pid: int) -> bool:
    """Someone waits on ``blocker_pid``'s lock: only this test's server can (other tests share
    the PostgreSQL server, and their statements wait on locks of their own). (On an autocommit
    connection: a transaction sees one snapshot of these statistics.)"""
    row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE '%%ichido_events%%'"
                        " AND %s = ANY(pg_blocking_pids(pid))", (blocker_pid,)).fetchone()
    return bool(row and row[0])


def test_one_row_the_store_refuses_does_not_fail_its_batch_neighbours(tmp_path: Path) -> None:
    """I5 at ingest: a row the store refuses for a reason validation did not foresee (here a
    trigger) fails alone; the rest of its batch is stored and answered."""
    group = _group(f"sqlite:///{tmp_path / 'poison.db'}")
    deliveries = [parse_delivery(make_event()) for _ in range(40)]
    poison = deliveries[17]
    with group.inbox.intake.transaction() as tx:  # where the receiver writes on SQLite
        tx.execute(f"CREATE TRIGGER poison BEFORE INSERT ON ichido_intake WHEN NEW.id = "
                   f"'{poison.id}' BEGIN SELECT RAISE(ABORT, 'refused by the store'); END")

    async def scenario() -> list[Outcome | BaseException]:
        answers = await asyncio.gather(*(group.submit(d) for d in deliveries),
                                       return_exceptions=True)
        await group.close()
        return answers

    answers = run_async(scenario)
    assert isinstance(answers[17], StorageUnavailable)
    assert answers[:17] + answers[18:] == [Outcome.ACCEPTED] * 39
    assert group.inbox.get(poison.id) is None
    assert all(group.inbox.get(d.id) is not None for d in deliveries if d is not poison)
    group.inbox.close()
