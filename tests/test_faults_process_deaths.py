"""A handler or sender that kills its own process (I5, docs/invariants.md): the death is
charged to the item that caused it, never to the others of its claim batch.

A real ``ichido worker`` runs tests/apps/process_killer.py; a supervisor loop here starts it
again whenever it died, as systemd or Kubernetes would, until the queue is settled. The
poison must end dead with a reason that says its process died, after the configured attempts;
every innocent item of its batches must be applied exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import pytest

from ichido.event import parse_delivery
from tests.support import (
    WorkerProcess,
    effect_counts,
    event_id_of,
    make_event,
    open_store,
    wait_until,
)

APP = "tests.apps.process_killer:app"
MAX_ATTEMPTS = 2


@pytest.fixture(params=["sqlite", "postgres"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store of each queue (Redis, a seen tier, has no part in the queue)."""
    monkeypatch.delenv("ICHIDO_REDIS_URL", raising=False)
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ichido.db'}"
    return request.getfixturevalue("postgres_url")


def worker_env(claim_batch: int, max_attempts: int = MAX_ATTEMPTS,
               **extra: str) -> dict[str, str]:
    """A short lease, so the claims of a dead worker are due again soon after its restart."""
    return {"ICHIDO_LEASE": "1s", "ICHIDO_CLAIM_BATCH": str(claim_batch),
            "ICHIDO_MAX_ATTEMPTS": str(max_attempts), "ICHIDO_RETRY_BASE": "0.01",
            "ICHIDO_RETRY_CAP": "0.05", **extra}


def supervise(worker: WorkerProcess, settled: Callable[[], bool], *, most_deaths: int) -> int:
    """Restart ``worker`` each time it died until ``settled()``; return how often it died."""
    deaths = 0

    def settled_or_restarted() -> bool:
        nonlocal deaths
        if settled():
            return True
        if not worker.running():
            deaths += 1
            assert deaths <= most_deaths, f"died {deaths} times:\n{worker.output()[-3000:]}"
            worker.launch()
        return False

    try:
        wait_until(settled_or_restarted, timeout=180, interval=0.05,
                   message="the queue settled")
    finally:
        worker.kill()
    return deaths


def store(url: str, groups: list[list[bytes]]) -> None:
    """Each group in a commit of its own, in order: claims take them in this order."""
    inbox = open_store(url)
    try:
        for group in groups:
            if group:
                assert all(inbox.accept([parse_delivery(body) for body in group]))
    finally:
        inbox.close()


def events_settled(url: str, total: int) -> bool:
    inbox = open_store(url)
    try:
        stats = inbox.stats()
    finally:
        inbox.close()
    return (stats["pending"] == stats["processing"] == stats["retrying"] == 0
            and stats["processed"] + stats["dead"] == total)


def assert_died_alone(record) -> None:
    """Dead, with a reason that says its process died, after the configured attempts."""
    assert record.status == "dead", record
    assert "process died" in (record.last_error or ""), record.last_error


@pytest.mark.parametrize(("claim_batch", "before", "after", "killer"), [
    (24, 0, 23, "test.kills_process"),   # the poison first of a full batch
    (24, 11, 12, "test.exits_process"),  # in the middle, os._exit rather than SIGKILL
    (8, 7, 12, "test.kills_process"),    # last of its batch, a second batch behind it
    (1, 2, 2, "test.kills_process"),     # batches of one: only the poison ever dies
])
def test_a_handler_that_kills_its_process_is_dead_alone_and_its_batch_applied_once(
        database_url: str, claim_batch: int, before: int, after: int, killer: str) -> None:
    first = [make_event("payment_intent.succeeded") for _ in range(before)]
    poison = make_event(killer)
    rest = [make_event("charge.succeeded") for _ in range(after)]
    store(database_url, [first, [poison], rest])
    innocents = [event_id_of(body) for body in (*first, *rest)]
    total = len(innocents) + 1

    worker = WorkerProcess(database_url, app=APP, env=worker_env(claim_batch))
    deaths = supervise(worker, lambda: events_settled(database_url, total),
                       most_deaths=MAX_ATTEMPTS + 3)

    inbox = open_store(database_url)
    try:
        assert effect_counts(inbox) == dict.fromkeys(innocents, 1)
        assert Counter(inbox.get(i).status for i in innocents) == {"processed": len(innocents)}
        assert_died_alone(inbox.get(event_id_of(poison)))
    finally:
        inbox.close()
    # It died alone MAX_ATTEMPTS times, and once before in company, uncharged.
    assert deaths == MAX_ATTEMPTS + 1


def test_with_worker_threads_side_by_side_a_killer_is_still_charged_alone(
        database_url: str) -> None:
    """Four threads claim four events each: "alone" must mean alone in the process, or the
    threads' innocent events running beside the killer are charged its deaths (and with one
    attempt allowed, dead-lettered)."""
    slow = [make_event("test.slow") for _ in range(40)]
    poison = make_event("test.kills_slowly")
    store(database_url, [slow[:18], [poison], slow[18:]])
    innocents = [event_id_of(body) for body in slow]

    worker = WorkerProcess(database_url, app=APP, concurrency=4,
                           env=worker_env(4, max_attempts=1))
    deaths = supervise(worker, lambda: events_settled(database_url, len(slow) + 1),
                       most_deaths=4)

    inbox = open_store(database_url)
    try:
        assert effect_counts(inbox) == dict.fromkeys(innocents, 1)
        assert_died_alone(inbox.get(event_id_of(poison)))
    finally:
        inbox.close()
    assert deaths == 2


def test_two_killers_in_one_batch_are_each_dead_alone(queue_url: str) -> None:
    groups = [[make_event() for _ in range(5)], [make_event("test.kills_process")],
              [make_event() for _ in range(5)], [make_event("test.exits_process")],
              [make_event() for _ in range(5)]]
    store(queue_url, groups)
    poisons = [event_id_of(groups[1][0]), event_id_of(groups[3][0])]
    innocents = [event_id_of(body) for group in groups[::2] for body in group]

    worker = WorkerProcess(queue_url, app=APP, env=worker_env(32))
    deaths = supervise(worker, lambda: events_settled(queue_url, len(innocents) + 2),
                       most_deaths=2 * MAX_ATTEMPTS + 4)

    inbox = open_store(queue_url)
    try:
        assert effect_counts(inbox) == dict.fromkeys(innocents, 1)
        for poison in poisons:
            assert_died_alone(inbox.get(poison))
    finally:
        inbox.close()
    assert deaths == 2 * MAX_ATTEMPTS + 1  # the second never ran in company


# -- the outbox runs on the same queue ----------------------------------------------------------

def outbox_settled(url: str) -> bool:
    inbox = open_store(url)
    try:
        with inbox.reading() as tx:
            open_rows = tx.execute("SELECT count(*) FROM ichido_outbox WHERE status IN"
                                   " ('pending', 'processing', 'retrying')").fetchone()[0]
    finally:
        inbox.close()
    return open_rows == 0


@pytest.mark.parametrize(("before", "after"), [(0, 20), (9, 9)])
def test_a_sender_that_kills_its_process_is_dead_alone_and_the_other_messages_sent_once(
        queue_url: str, tmp_path: Path, before: int, after: int) -> None:
    sent_log = tmp_path / "sent.log"
    first = [make_event("test.notify") for _ in range(before)]
    poison = make_event("test.notify_kills")
    rest = [make_event("test.notify") for _ in range(after)]
    store(queue_url, [first, [poison], rest])  # one batch of events queues them in order
    innocents = [event_id_of(body) for body in (*first, *rest)]

    worker = WorkerProcess(queue_url, app=APP, env=worker_env(64, SENT_LOG=str(sent_log)))
    supervise(worker, lambda: (events_settled(queue_url, len(innocents) + 1)
                               and outbox_settled(queue_url)),
              most_deaths=MAX_ATTEMPTS + 3)

    sent = Counter(sent_log.read_text().split()) if sent_log.exists() else Counter()
    assert sent == dict.fromkeys(innocents, 1)
    inbox = open_store(queue_url)
    try:
        with inbox.reading() as tx:
            rows = dict(tx.execute("SELECT key, status FROM ichido_outbox").fetchall())
            error = tx.execute("SELECT last_error FROM ichido_outbox WHERE key = ?",
                               (event_id_of(poison),)).fetchone()[0]
    finally:
        inbox.close()
    assert rows.pop(event_id_of(poison)) == "dead"
    assert "process died" in error, error
    assert set(rows.values()) == {"processed"}
