"""The seen tier is bound to its store (I3): two stores that are copies of each other (a
cloned deployment: a copied SQLite file, a PostgreSQL schema restored elsewhere) share one
Redis, and neither answers "duplicate" for an event only the other stored. A copy carries the
store's name, so the namespace also says where the store lives."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from ichido import App
from ichido.config import Settings
from ichido.inbox.sqlite import intake_path

from tests.conftest import POSTGRES_URL, connect_admin
from tests.support import (
    SECRET,
    asgi_client,
    effect_counts,
    event_id_of,
    make_event,
    post_async,
    postgres_schema,
    record_effect,
    run_async,
)


def open_app(url: str, redis_url: str) -> App:
    app = App(Settings(database_url=url, redis_url=redis_url, webhook_secrets=(SECRET,)),
              workers=0, schema=[("test_effects", 1, [
                  "CREATE TABLE effects (event_id TEXT NOT NULL, type TEXT NOT NULL,"
                  " attempt INTEGER NOT NULL)"])])
    app.migrate()
    app.on("charge.succeeded")(record_effect)
    app.start()
    return app


def answers(app: App, bodies: list[bytes]) -> list[str]:
    async def scenario() -> list[str]:
        async with asgi_client(app) as client:
            sent = [await post_async(client, body) for body in bodies]
        await app.shutdown()
        assert {a.status_code for a in sent} == {200}
        return [a.json()["status"] for a in sent]

    return run_async(scenario)


def sqlite_copies(tmp_path: Path) -> Iterator[tuple[str, str]]:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    original, copy = tmp_path / "a" / "ichido.db", tmp_path / "b" / "ichido.db"
    url = f"sqlite:///{original}"
    App(Settings(database_url=url), workers=0).migrate()
    ran = App(Settings(database_url=url), workers=0)
    ran.start()  # named, as a store that ran
    ran.close()
    for path in (str(original), intake_path(str(original))):  # byte for byte, files at rest
        shutil.copy(path, path.replace(str(tmp_path / "a"), str(tmp_path / "b")))
    yield url, f"sqlite:///{copy}"


def postgres_copies() -> Iterator[tuple[str, str]]:
    connect_admin().close()
    with postgres_schema(POSTGRES_URL, prefix="ichido_t") as original, \
            postgres_schema(POSTGRES_URL, prefix="ichido_t") as copy:
        for url in (original, copy):
            App(Settings(database_url=url), workers=0).migrate()
            ran = App(Settings(database_url=url), workers=0)
            ran.start()  # named, as a store that ran
            ran.close()
        with psycopg.connect(original) as a, psycopg.connect(copy) as b:
            name = a.execute("SELECT id FROM ichido_store").fetchone()[0]
            b.execute("UPDATE ichido_store SET id = %s", (name,))  # restored: the same name
        yield original, copy


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_copy_of_a_store_sharing_its_redis_stores_what_only_the_original_stored(
        engine: str, redis_url: str, tmp_path: Path) -> None:
    copies = sqlite_copies(tmp_path) if engine == "sqlite" else postgres_copies()
    original_url, copy_url = next(copies)
    original, copy = open_app(original_url, redis_url), open_app(copy_url, redis_url)
    try:
        bodies = [make_event("charge.succeeded") for _ in range(20)]
        assert answers(original, bodies) == ["accepted"] * 20
        ids = [event_id_of(b) for b in bodies]
        original.seen.add(ids)  # durable there: as the tier learns them (unless it was muted)
        assert original.seen.seen(ids) == set(ids)
        assert answers(copy, bodies) == ["accepted"] * 20  # the copy never stored them
        assert answers(copy, bodies[:3]) == ["duplicate"] * 3  # its own ids: still caught
        copy.worker().drain()
        assert effect_counts(copy.database) == {event_id_of(b): 1 for b in bodies}
    finally:
        for app in (original, copy):
            app.seen.clear()
            app.close()
        next(copies, None)


def test_a_snapshot_copied_back_in_place_stores_what_the_tier_remembers_from_after_it(
        redis_url: str, tmp_path: Path) -> None:
    """``cp`` of a snapshot over the files keeps their path, their inodes and their names: only
    the files can tell that the ids Redis learned after the snapshot are not in them."""
    store = tmp_path / "ichido.db"
    url = f"sqlite:///{store}"
    files = [store, Path(intake_path(str(store)))]
    first, later = ([make_event("charge.succeeded") for _ in range(10)] for _ in range(2))
    app = open_app(url, redis_url)
    answers(app, first)
    app.close()
    for path in files:
        shutil.copy(path, tmp_path / f"{path.name}.snapshot")
    app = open_app(url, redis_url)
    try:
        assert answers(app, later) == ["accepted"] * 10
        ids = [event_id_of(b) for b in later]
        app.seen.add(ids)  # as the tier learns them (unless it was muted)
        assert app.seen.seen(ids) == set(ids)
    finally:
        app.close()
    for path in files:  # put back, byte for byte, into the same files
        shutil.copy(tmp_path / f"{path.name}.snapshot", path)

    app = open_app(url, redis_url)
    try:
        assert answers(app, later) == ["accepted"] * 10  # not "duplicate": never stored here
        assert answers(app, first[:2] + later[:2]) == ["duplicate"] * 4
        app.worker().drain()
        assert effect_counts(app.database) == {event_id_of(b): 1 for b in first + later}
    finally:
        app.seen.clear()
        app.close()
