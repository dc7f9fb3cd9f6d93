"""I1 (docs/invariants.md): an acknowledged event is durable, so a ``kill -9`` right after the
200 loses nothing; and a worker killed mid-batch leaves claims that the lease hands to the next
worker (I2: still once).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

from ichido.event import parse_delivery
from tests.support import (
    WorkerProcess,
    effect_counts,
    event_id_of,
    make_event,
    migrate_effects,
    open_store,
    start_server,
    wait_until,
)

SHORT_LEASE = {"ICHIDO_LEASE": "1s"}


def all_finished(inbox, total: int) -> bool:
    stats = inbox.stats()
    return stats["processed"] == total and stats["pending"] == stats["processing"] == 0


def test_acknowledged_events_survive_kill_9_and_apply_once(database_url: str) -> None:
    server = start_server(database_url, workers=1, env=SHORT_LEASE)
    bodies = [make_event("payment_intent.succeeded") for _ in range(300)]
    queue = list(reversed(bodies))
    lock = threading.Lock()
    acknowledged: list[str] = []
    answers: list[dict] = []

    def sender() -> None:
        with httpx.Client(timeout=30) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                try:
                    response = server.post(body, client)
                except httpx.HTTPError:  # the server is gone: this one was never acknowledged
                    continue
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(event_id_of(body))
                        answers.append(response.json())

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 150, message="150 acknowledgements")
    finally:
        server.kill()  # while requests are still in flight, and the worker is busy
        for thread in threads:
            thread.join(60)
    assert all(answer["status"] == "accepted" for answer in answers)

    inbox = open_store(database_url)
    stored = {record.id for record in inbox.list(limit=10_000)}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged events were lost by kill -9"

    restarted = start_server(database_url, workers=1, env=SHORT_LEASE)
    try:
        wait_until(lambda: all_finished(inbox, len(stored)), message="every stored event done")
    finally:
        restarted.stop()
    assert effect_counts(inbox) == dict.fromkeys(stored, 1)
    assert inbox.stats()["unique"] == len(stored)


def test_worker_killed_mid_batch_hands_its_claims_over_after_the_lease(
        database_url: str, tmp_path: Path) -> None:
    if os.environ.get("ICHIDO_REDIS_URL"):
        pytest.skip("workers never use the seen tier: the postgres run covers this store")
    inbox = open_store(database_url)
    before = [make_event("payment_intent.succeeded") for _ in range(10)]
    gated = make_event("test.gated")
    after = [make_event("charge.succeeded") for _ in range(10)]
    for group in (before, [gated], after):  # three commits: the gated event sits mid-queue
        inbox.accept([parse_delivery(body) for body in group])
    ids = [event_id_of(body) for body in (*before, gated, *after)]
    migrate_effects(database_url)

    started, gate = tmp_path / "started", tmp_path / "gate"
    worker = WorkerProcess(database_url, env={
        **SHORT_LEASE, "ICHIDO_CLAIM_BATCH": "64",
        "EFFECTS_STARTED_FILE": str(started), "EFFECTS_GATE_FILE": str(gate)})
    try:
        wait_until(lambda: started.exists() or worker.proc.poll() is not None,
                   message="the gated handler to start")
    finally:
        worker.kill()  # inside the gated event's transaction, with the rest of the batch claimed
    assert started.exists(), f"the worker exited early: {worker.output()}"

    stats = inbox.stats()
    assert stats["processing"] >= 1
    assert stats["processing"] + stats["processed"] == len(ids)  # one batch held them all
    assert inbox.get(event_id_of(gated)).status == "processing"
    assert effect_counts(inbox)[event_id_of(gated)] == 0

    restarted = start_server(database_url, workers=1, env=SHORT_LEASE)
    try:
        wait_until(lambda: all_finished(inbox, len(ids)), message="the batch taken over")
    finally:
        restarted.stop()
    assert effect_counts(inbox) == dict.fromkeys(ids, 1)
    record = inbox.get(event_id_of(gated))  # it died in company: that attempt is not charged
    assert (record.status, record.attempts, record.failures) == ("processed", 1, ())
