"""A restart never waits on a handler (SQLite): while the store's write lock is held (as a
handler's long transaction holds it), a newly started ``ichido serve`` answers, and stores,
deliveries; what it needs at start is only what the receiver writes (its intake)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.support import (
    effect_counts,
    event_id_of,
    make_event,
    migrate_effects,
    open_store,
    start_server,
    wait_until,
)


def test_serve_starts_and_stores_while_a_handler_holds_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ichido.db'}"
    migrate_effects(url)
    open_store(url).close()  # named and bound, as any store that ran before
    handler = sqlite3.connect(tmp_path / "ichido.db", isolation_level=None)
    handler.execute("BEGIN IMMEDIATE")
    handler.execute("INSERT INTO effects (event_id, type, attempt) VALUES ('held', 'x', 1)")
    bodies = [make_event("charge.succeeded") for _ in range(10)]
    try:
        server = start_server(url, workers=1, migrate=False)  # waits for /healthz to answer
        try:
            with httpx.Client(timeout=30) as client:
                answers = [server.post(body, client) for body in bodies]
            assert [a.status_code for a in answers] == [200] * 10, answers[0].text
            assert {a.json()["status"] for a in answers} == {"accepted"}
        finally:
            handler.execute("ROLLBACK")  # the handler finishes; the worker goes on
        store = open_store(url)
        try:
            wait_until(lambda: set(effect_counts(store)) >= {event_id_of(b) for b in bodies},
                       timeout=120, message="every event applied")
            assert all(effect_counts(store)[event_id_of(b)] == 1 for b in bodies)
        finally:
            store.close()
            server.stop()
    finally:
        handler.close()
