"""A SQLite store and its intake are one thing: what an operator does to the files (move the
store, delete the intake, put an old copy of either back, name two stores ``x`` and ``x.db``)
never makes a delivery answered 200 vanish, and never settles one service's events into
another's store. Real files, signed deliveries through the receiver, the worker's own settle."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from ichido import App
from ichido.config import Settings
from ichido.inbox.sqlite import intake_path

from tests.test_cli_output import one_line_error
from tests.support import (
    SECRET,
    asgi_client,
    effect_counts,
    effects_schema,
    event_id_of,
    make_event,
    post_async,
    record_effect,
    run_async,
    run_cli,
)


def serve(path: Path) -> App:
    """ichido on the store at ``path``, as a restart opens it; its handler records effects."""
    app = App(Settings(database_url=f"sqlite:///{path}", webhook_secrets=(SECRET,)), workers=0,
              schema=effects_schema())
    app.on("charge.succeeded")(record_effect)
    app.start()
    return app


def deliver(app: App, bodies: list[bytes]) -> list[dict]:
    """Each body in its own request, one after another (so each is its own intake batch)."""
    async def scenario() -> list[dict]:
        async with asgi_client(app) as client:
            answers = [await post_async(client, body) for body in bodies]
        await app.shutdown()
        assert [a.status_code for a in answers] == [200] * len(bodies), answers[-1].text
        return [a.json() for a in answers]

    return run_async(scenario)


def events(count: int) -> list[bytes]:
    return [make_event("charge.succeeded") for _ in range(count)]


def applied_once(app: App, bodies: list[bytes]) -> bool:
    """Every event stored, processed, and applied exactly once."""
    app.worker().drain()
    counts = effect_counts(app.database)
    return all(counts[event_id_of(body)] == 1 for body in bodies)


def remove_intake(store: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(intake_path(str(store)) + suffix).unlink(missing_ok=True)


def intake_ids(store: Path) -> set[str]:
    with sqlite3.connect(intake_path(str(store))) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM ichido_intake")}


def test_a_store_moved_without_its_intake_stores_every_new_delivery(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir(), (tmp_path / "new").mkdir()
    old, new = tmp_path / "old" / "ichido.db", tmp_path / "new" / "ichido.db"
    app = serve(old)
    before, waiting = events(40), events(5)
    deliver(app, before)
    assert applied_once(app, before)  # the store's mark is at batch 40 of the old intake
    deliver(app, waiting)  # acknowledged, still in the old intake when the store moves
    app.close()
    shutil.move(old, new)

    app = serve(new)  # a new intake beside it: batches 1, 2, 3, ... again
    after = events(12)
    deliver(app, after)
    try:
        assert applied_once(app, before + after)
    finally:
        app.close()
    assert {event_id_of(b) for b in waiting} <= intake_ids(old)  # left behind, never deleted


def test_a_deleted_intake_is_replaced_and_new_deliveries_are_stored(tmp_path: Path) -> None:
    store = tmp_path / "ichido.db"
    app = serve(store)
    before = events(30)
    deliver(app, before)
    assert applied_once(app, before)
    app.close()
    remove_intake(store)

    app = serve(store)
    after = events(8)
    deliver(app, after)
    try:
        assert applied_once(app, before + after)
    finally:
        app.close()


def test_an_intake_deleted_under_a_running_receiver_answers_503_not_200(tmp_path: Path) -> None:
    store = tmp_path / "ichido.db"
    app = serve(store)
    deliver(app, events(2))
    remove_intake(store)
    late = make_event("charge.succeeded")

    async def scenario() -> int:
        async with asgi_client(app) as client:
            answer = await post_async(client, late)
        await app.shutdown()
        return answer.status_code

    try:
        assert run_async(scenario) == 503  # written to a deleted file, it would be lost
    finally:
        app.close()


def test_an_old_store_put_back_beside_a_newer_intake_loses_nothing_in_the_intake(
        tmp_path: Path) -> None:
    store = tmp_path / "ichido.db"
    app = serve(store)
    first = events(10)
    deliver(app, first)
    assert applied_once(app, first)
    app.close()
    shutil.copy(store, tmp_path / "old-copy.db")  # a cold copy of the store alone

    app = serve(store)
    settled, waiting = events(10), events(6)
    deliver(app, settled)
    assert applied_once(app, settled)
    deliver(app, waiting)  # in the intake when the old store comes back
    app.close()
    shutil.copy(tmp_path / "old-copy.db", store)

    app = serve(store)
    later = events(4)
    deliver(app, later)
    try:
        assert applied_once(app, first + waiting + later)
        answers = deliver(app, settled)  # lost with the restore: redeliveries are applied
        assert {a["status"] for a in answers} == {"accepted"}
        assert applied_once(app, first + settled + waiting + later)
    finally:
        app.close()


def test_an_old_intake_put_back_beside_a_newer_store_loses_no_new_delivery(
        tmp_path: Path) -> None:
    """The intake's batch numbers restart below the store's mark: the deliveries in them
    must be settled, not taken for settled already and deleted."""
    store = tmp_path / "ichido.db"
    app = serve(store)
    first = events(3)
    deliver(app, first)
    app.worker().drain()
    app.close()
    for suffix in ("", "-wal", "-shm"):
        source = Path(intake_path(str(store)) + suffix)
        if source.exists():
            shutil.copy(source, tmp_path / f"intake-copy{suffix}")

    app = serve(store)
    middle = events(30)
    deliver(app, middle)
    assert applied_once(app, first + middle)  # the store's mark is now past batch 30
    app.close()
    remove_intake(store)
    for suffix in ("", "-wal", "-shm"):
        copy = tmp_path / f"intake-copy{suffix}"
        if copy.exists():
            shutil.copy(copy, intake_path(str(store)) + suffix)

    app = serve(store)
    after = events(10)
    deliver(app, after)
    try:
        assert applied_once(app, first + middle + after)
    finally:
        app.close()


def test_stores_named_x_and_x_db_keep_their_own_events(tmp_path: Path) -> None:
    one, two = serve(tmp_path / "x"), serve(tmp_path / "x.db")
    try:
        ours, theirs = events(15), events(15)
        for a, b in zip(ours, theirs):  # interleaved, as two services running side by side
            deliver(one, [a])
            deliver(two, [b])
        assert applied_once(one, ours) and applied_once(two, theirs)
        assert set(effect_counts(one.database)) == {event_id_of(b) for b in ours}
        assert set(effect_counts(two.database)) == {event_id_of(b) for b in theirs}
    finally:
        one.close()
        two.close()


def test_an_intake_of_another_store_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "ichido.db", tmp_path / "b" / "ichido.db"
    for store in (first, second):
        serve(store).close()
    app = serve(first)
    waiting = events(3)
    deliver(app, waiting)
    app.close()
    remove_intake(second)
    for suffix in ("", "-wal", "-shm"):
        source = Path(intake_path(str(first)) + suffix)
        if source.exists():
            shutil.copy(source, intake_path(str(second)) + suffix)

    done = run_cli("serve", "--port", "0", database_url=f"sqlite:///{second}",
                   env={"STRIPE_WEBHOOK_SECRET": SECRET})
    assert "belongs to another store" in one_line_error(done, "intake_mismatch")
    assert {event_id_of(b) for b in waiting} <= intake_ids(second)  # nothing settled, nothing lost


def test_a_settle_refuses_an_intake_swapped_under_a_running_worker(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    mine, other = tmp_path / "a" / "ichido.db", tmp_path / "b" / "ichido.db"
    serve(other).close()
    app = serve(mine)
    try:
        deliver(app, events(2))
        with sqlite3.connect(intake_path(str(other))) as theirs:
            owner = theirs.execute("SELECT intake, store FROM ichido_intake_owner").fetchone()
        with sqlite3.connect(intake_path(str(mine))) as conn:  # rewritten in place
            conn.execute("UPDATE ichido_intake_owner SET intake = ?, store = ?", owner)
        from ichido.errors import StorageUnavailable

        with pytest.raises(StorageUnavailable) as refused:
            app.inbox.settle_intake()
        assert refused.value.code == "intake_mismatch"
        assert app.inbox.stats()["pending"] == 2  # still in the intake
    finally:
        app.close()


def test_an_intake_named_by_an_earlier_version_is_adopted_with_its_deliveries(
        tmp_path: Path) -> None:
    store = tmp_path / "ichido.db"
    app = serve(store)
    settled, waiting = events(4), events(3)
    deliver(app, settled)
    app.worker().drain()
    deliver(app, waiting)
    app.close()
    for path, change in ((intake_path(str(store)), "DELETE FROM ichido_intake_owner"),
                         (str(store), "UPDATE ichido_intake_settled SET intake = NULL")):
        conn = sqlite3.connect(path, isolation_level=None)  # as the earlier version left it
        conn.execute(change)
        conn.close()
    for suffix in ("", "-wal", "-shm"):
        source = Path(intake_path(str(store)) + suffix)
        if source.exists():
            source.rename(tmp_path / f"ichido.intake.db{suffix}")

    app = serve(store)
    try:
        assert app.inbox.stats()["pending"] == 3
        assert applied_once(app, settled + waiting)
    finally:
        app.close()
    assert not (tmp_path / "ichido.intake.db").exists()
