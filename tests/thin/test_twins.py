"""Twins apply once: a snapshot event and the thin event naming it in ``snapshot_event`` are
one change. Whichever reaches its handlers' commit first applies; the other is finished as
``twin`` (counted in ``stats``, the metrics and the dashboard); a failed attempt never marks
the change done, so the twin can still apply it. On every backend."""

from __future__ import annotations

import threading
from typing import Any, Iterator

import orjson
import pytest

from ichido.config import Settings
from ichido.metrics import METRICS
from ichido.thin import twins
from tests.support import wait_until
from tests.thin.world import ThinWorld, record

SUCCEEDED = ("payment_intent.succeeded", "v1.payment_intent.succeeded")


@pytest.fixture
def world(settings: Settings) -> Iterator[ThinWorld]:
    running = ThinWorld(settings, hold=True)
    yield running
    running.close()


def one_change(world: ThinWorld) -> tuple[bytes, bytes]:
    """The snapshot and the thin notification of one payment's ``succeeded``."""
    world.pay()
    world.settle()
    [snapshot], [thin] = (world.recorded(kind) for kind in SUCCEEDED)
    assert orjson.loads(thin)["snapshot_event"] == orjson.loads(snapshot)["id"]
    return snapshot, thin


def status_of(world: ThinWorld, body: bytes) -> tuple[str, str | None]:
    record_ = world.app.inbox.get(orjson.loads(body)["id"])
    return record_.status, record_.last_error


def twin_metric() -> float:
    return METRICS.registry.get_sample_value("ichido_duplicates_total", {"tier": "twin"}) or 0.0


@pytest.mark.parametrize("first", ["snapshot", "thin"])
def test_the_first_twin_applies_and_the_other_is_recorded_as_its_duplicate(
        world: ThinWorld, first: str) -> None:
    world.app.on("payment_intent.succeeded")(record)
    snapshot, thin = one_change(world)
    early, late = (snapshot, thin) if first == "snapshot" else (thin, snapshot)
    before = twin_metric()
    world.deliver(early)
    world.drain()
    world.http.sent.clear()
    world.deliver(late)
    world.drain()
    early_id = orjson.loads(early)["id"]
    assert [row[:3] for row in world.seen()] == [
        (early_id, "payment_intent.succeeded", first)]
    assert status_of(world, early) == ("processed", None)
    assert status_of(world, late) == ("twin", f"twin of {early_id}, which applied the change")
    if first == "snapshot":
        assert world.http.sent == []  # the thin twin of an applied change costs no read
    stats = world.app.inbox.stats()
    assert stats["duplicates_twin"] == 1 and stats["processed"] == 2
    assert twin_metric() == before + 1


@pytest.mark.parametrize("failing", ["snapshot", "thin"])
def test_a_failed_attempt_leaves_the_change_to_its_twin_and_never_marks_it_done(
        world: ThinWorld, failing: str) -> None:
    @world.app.on("payment_intent.succeeded")
    def fails_for_one_shape(event: Any, tx: Any) -> None:
        record(event, tx)
        if event.shape == failing:
            raise RuntimeError(f"the {failing} shape cannot apply")

    snapshot, thin = one_change(world)
    failed, other = (snapshot, thin) if failing == "snapshot" else (thin, snapshot)
    world.deliver(failed)
    world.app.worker().run_once()
    assert status_of(world, failed)[0] == "retrying" and world.seen() == []
    with world.app.database.reading() as tx:  # the failure marked nothing done
        assert tx.execute("SELECT count(*) FROM ichido_changes").fetchone()[0] == 0
    world.deliver(other)
    wait_until(lambda: world.drain() >= 0 and status_of(world, failed)[0] == "twin",
               message="the failed twin's retry to find the change applied")
    other_id = orjson.loads(other)["id"]
    assert [row[:3] for row in world.seen()] == [(other_id, "payment_intent.succeeded",
                                                  "thin" if failing == "snapshot" else "snapshot")]
    assert status_of(world, failed) == ("twin", f"twin of {other_id}, which applied the change")


@pytest.mark.parametrize("ignoring", ["snapshot", "thin"])
def test_a_twin_its_handlers_ignore_leaves_the_change_to_the_other_shape(
        world: ThinWorld, ignoring: str) -> None:
    """A handler that cannot read one shape (an API version it does not read, say) ignores it:
    nothing was applied, so the other shape still applies the change."""
    @world.app.on("payment_intent.succeeded")
    def reads_one_shape(event: Any, tx: Any) -> None:
        if event.shape == ignoring:
            event.ignore(f"cannot read the {ignoring} shape")
            return
        record(event, tx)

    snapshot, thin = one_change(world)
    early, late = (snapshot, thin) if ignoring == "snapshot" else (thin, snapshot)
    world.deliver(early)
    world.drain()
    assert status_of(world, early) == ("ignored", f"cannot read the {ignoring} shape")
    world.deliver(late)
    world.drain()
    assert status_of(world, late) == ("processed", None)
    assert [row[:3] for row in world.seen()] == [
        (orjson.loads(late)["id"], "payment_intent.succeeded",
         "thin" if ignoring == "snapshot" else "snapshot")]


def test_twins_processed_at_once_by_two_workers_apply_once(settings: Settings) -> None:
    """Whatever the interleaving, every change applies once: both shapes of five payments,
    delivered together, drained by two worker threads at once, one event per claim."""
    world = ThinWorld(settings.with_(claim_batch=1))
    try:
        world.app.on("payment_intent.*")(record)
        for _ in range(5):
            world.pay()
        world.settle()
        workers = [threading.Thread(target=world.drain) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        world.drain()
        changes = [(row[1], row[3]) for row in world.seen()]
        assert len(changes) == 10 and len(set(changes)) == 10  # created and succeeded, x5
        stats = world.app.inbox.stats()
        assert stats["duplicates_twin"] == 10 and stats["dead"] == stats["retrying"] == 0
    finally:
        world.close()


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_twin_waits_for_the_holders_transaction_and_applies_only_if_it_rolled_back(
        world: ThinWorld, outcome: str) -> None:
    """The key itself decides, not a read: the twin's insert waits for the holder's open
    transaction (a PostgreSQL row lock; SQLite's one writer) and takes the key only if that
    transaction rolled back."""
    database = world.app.database
    result: dict[str, dict[str, str]] = {}
    holder = database.transaction()
    tx = holder.__enter__()
    try:
        assert twins.hold(tx, [("evt_1Snapshot", "evt_1Snapshot")]) == {}

        def twin() -> None:
            with database.transaction() as other:
                result["held"] = twins.hold(other, [("evt_test_65Thin", "evt_1Snapshot")])

        waiting = threading.Thread(target=twin)
        waiting.start()
    finally:
        if outcome == "commit":
            holder.__exit__(None, None, None)
        else:
            holder.__exit__(RuntimeError, RuntimeError("handler failed"), None)
    waiting.join(60)
    expected = {"evt_test_65Thin": "evt_1Snapshot"} if outcome == "commit" else {}
    assert result["held"] == expected
