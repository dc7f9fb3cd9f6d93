"""``kill -9`` of worker processes mid-batch (I2, docs/invariants.md): their claims are taken
over after the lease, every event applied exactly once; and the outbox's lease, which follows
the setting too (I7).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from ichido.event import parse_delivery
from tests.support import (
    WorkerProcess,
    effect_counts,
    event_id_of,
    finished,
    make_event,
    open_store,
    wait_for_output,
    wait_until,
)


# -- kill -9 of two of three workers mid-batch ----------------------------------------------------

def claims_by_pid(url: str) -> dict[int, set[str]]:
    """Who holds what right now: event ids in ``processing``, by worker process id."""
    inbox = open_store(url)
    try:
        with inbox.reading() as tx:
            rows = tx.execute("SELECT id, lease_owner FROM ichido_events"
                              " WHERE status = 'processing'").fetchall()
    finally:
        inbox.close()
    held: dict[int, set[str]] = {}
    for event_id, owner in rows:
        held.setdefault(int(owner.split(":")[-2]), set()).add(event_id)
    return held


def test_kill_9_of_two_of_three_workers_mid_batch_hands_their_claims_over(
        fault_db: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    started = [tmp_path / f"started-{n}" for n in range(3)]
    workers = [WorkerProcess(fault_db, env={
        "ICHIDO_LEASE": "1s", "ICHIDO_CLAIM_BATCH": "16",
        "EFFECTS_STARTED_FILE": str(started[n]), "EFFECTS_GATE_FILE": str(gate)})
        for n in range(3)]
    try:
        for worker in workers:
            wait_for_output(worker, "worker thread")
        inbox = open_store(fault_db)
        # Three batches, each holding one event whose handler waits at the gate (inside its
        # transaction), then a tail nobody can take while all three are held up.
        groups = [[make_event("test.gated")] + [make_event("payment_intent.succeeded")
                                                 for _ in range(15)] for _ in range(3)]
        tail = [make_event("charge.succeeded") for _ in range(30)]
        for group in (*groups, tail):  # one commit each: a batch of 16 is one group
            inbox.accept([parse_delivery(body) for body in group])
        ids = [event_id_of(body) for body in (*(b for g in groups for b in g), *tail)]
        wait_until(lambda: all(path.exists() for path in started),
                   message="each worker held up mid-batch")
        held = claims_by_pid(fault_db)
        victims, survivor = workers[:2], workers[2]
        for worker in victims:
            assert held.get(worker.proc.pid), f"worker {worker.proc.pid} holds nothing: {held}"
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait(10)
        orphaned = set().union(*(held[w.proc.pid] for w in victims))
        before = effect_counts(inbox)
        assert not orphaned & set(before), "a claim still held had already taken effect"

        gate.touch()  # the survivor finishes its batch, then takes the orphans over
        wait_until(lambda: finished(inbox, len(ids)), message="every claim taken over")
        assert survivor.proc.poll() is None, survivor.output()
    finally:
        for worker in workers:
            worker.kill()

    assert effect_counts(inbox) == dict.fromkeys(ids, 1)
    for event_id in orphaned:  # claimed by a dead worker, then again after its lease, alone:
        record = inbox.get(event_id)  # a death in company is charged to none of them (I5)
        assert record.status == "processed" and record.attempts == 1, record
    assert Counter(inbox.get(i).status for i in ids) == {"processed": len(ids)}
    assert inbox.stats()["dead"] == 0
    inbox.close()


# -- found by the torture run (fixed upstream in 225e30c; kept as a regression test) ------------
# The outbox's lease was fixed at 60 s whatever ICHIDO_LEASE said, so the messages a worker had
# claimed when it was killed (a konbini voucher mail, a refund call) waited a minute: the lease
# trap of DESIGN.md ("make the lease length a setting").

def test_outbox_messages_of_a_sender_killed_mid_send_are_due_again_after_the_set_lease(
        tmp_path: Path) -> None:
    from ichido.config import Settings
    from ichido.outbox import enqueue
    from ichido.shop.app import create_shop
    from ichido.shop.settings import ShopSettings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'shop.db'}", lease_seconds=2.0)
    shop = create_shop(settings, ShopSettings(stripe_api_key="sk_test_outbox_lease",
                                              mail_dir=str(tmp_path / "mail")), workers=0)
    shop.app.start()
    inbox = shop.app.database
    with inbox.transaction() as tx:
        enqueue(tx, "mail", "mail:ord_lease:paid", {"order_id": "ord_lease", "to": "a@b.c",
                                                    "subject": "paid", "body": "paid"})

    class Killed(BaseException):
        """What the sender sees of a kill -9: nothing after this point runs."""

    def killed(key: str, payload: dict) -> None:
        raise Killed

    shop.outbox.senders["mail"] = killed
    claimed_at = time.time()
    with pytest.raises(Killed):
        shop.outbox.dispatch_once()
    with inbox.reading() as tx:
        status, attempts, due_at = tx.execute(
            "SELECT status, attempts, next_attempt_at FROM ichido_outbox").fetchone()
    inbox.close()
    assert (status, attempts) == ("processing", 1)  # claimed under a lease when it died
    assert due_at - claimed_at <= settings.lease_seconds + 1.0, (
        f"due again {due_at - claimed_at:.0f} s after the claim; the lease is "
        f"{settings.lease_seconds:g} s")
