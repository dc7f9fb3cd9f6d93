"""``ichido backup`` while ``ichido serve`` receives a burst of signed deliveries, then
``ichido restore``: nothing acknowledged before the backup began is lost, and redeliveries of
what was acknowledged after it are stored and applied, not swallowed as duplicates by a seen
tier (Redis) that still remembers them from the store the backup replaced."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx

from ichido.backup import backup
from ichido.config import Settings
from ichido.db.sqlite import path_from_url

from tests.support import (
    deliver,
    effect_counts,
    event_id_of,
    make_event,
    open_store,
    run_cli,
    start_server,
    stop_all,
    wait_until,
    WorkerProcess,
)


def settled(url: str) -> bool:
    """Whether the store itself (not its intake) holds an event yet."""
    with sqlite3.connect(path_from_url(url)) as conn:
        held = conn.execute("SELECT EXISTS (SELECT 1 FROM ichido_events)").fetchone()[0] == 1
    conn.close()
    return held


def test_a_backup_taken_mid_burst_restores_all_acknowledged_before_it(
        tmp_path: Path, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'ichido.db'}"
    env = {"ICHIDO_REDIS_URL": redis_url}
    bodies: list[bytes] = []
    acknowledged: list[str] = []
    stop = threading.Event()
    server = start_server(url, workers=0, env=env)
    # A worker of its own, settling every few seconds: the intake always holds some of what
    # was acknowledged, the store the rest, so the backup must take both.
    worker = WorkerProcess(url, env={**env, "ICHIDO_POLL_INTERVAL": "2"})

    def burst() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                bodies.append(make_event("charge.succeeded"))
                assert deliver(server.url, bodies[-1], client).status_code == 200
                acknowledged.append(event_id_of(bodies[-1]))

    sender = threading.Thread(target=burst)
    sender.start()
    try:
        wait_until(lambda: len(acknowledged) >= 80 and settled(url), timeout=120,
                   message="80 acknowledged, some of them settled into the store")
        before = set(acknowledged)  # acknowledged before the backup began
        # What `ichido backup` runs, called here so that it begins right after ``before`` is
        # taken (not a CLI start-up later, by when the worker would have settled all of it).
        backup(Settings(database_url=url), str(tmp_path / "backup.db"))
        wait_until(lambda: len(acknowledged) >= len(before) + 40, timeout=120,
                   message="more acknowledged after the backup")
        refused = run_cli("restore", str(tmp_path / "backup.db"), database_url=url)
        assert refused.returncode == 2 and "stop every ichido process" in refused.stderr
    finally:
        stop.set()
        sender.join(120)
        stop_all(server, worker)
    restored = run_cli("restore", str(tmp_path / "backup.db"), database_url=url)
    assert restored.returncode == 0, restored.stderr

    server = start_server(url, workers=1, env=env, migrate=False)
    store = open_store(url)
    try:
        kept = {event_id_of(b) for b in bodies if store.get(event_id_of(b)) is not None}
        assert before <= kept  # nothing acknowledged before the backup is lost
        with httpx.Client(timeout=30) as client:  # Stripe (or `ichido reconcile`) resends
            answers = {event_id_of(b): deliver(server.url, b, client).json() for b in bodies}
        assert {answers[i]["status"] for i in answers if i not in kept} <= {"accepted"}
        wanted = {event_id_of(b): 1 for b in bodies}
        wait_until(lambda: effect_counts(store) == wanted, timeout=120,
                   message="every event applied once")
    finally:
        store.close()
        server.stop()


def test_a_backup_never_overwrites_and_postgresql_has_its_own_tools(
        tmp_path: Path, postgres_url: str) -> None:
    from tests.test_cli_output import one_line_error

    url = f"sqlite:///{tmp_path / 'ichido.db'}"
    open_store(url).close()
    (tmp_path / "taken.db").write_bytes(b"someone's file")
    done = run_cli("backup", str(tmp_path / "taken.db"), database_url=url)
    assert "exists already" in one_line_error(done, "config_error")
    assert (tmp_path / "taken.db").read_bytes() == b"someone's file"
    done = run_cli("backup", str(tmp_path / "pg.db"), database_url=postgres_url)
    assert "pg_dump" in one_line_error(done, "not_supported")
