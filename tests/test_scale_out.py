"""Scale out on one PostgreSQL and one Redis (issue 5, item 3; I8 (docs/invariants.md) across
processes): several receiver processes and several worker processes share them; the same events
sent to every receiver at once still give one effect each. PostgreSQL is never migrated behind
the user's back: a schema that is behind stops `ichido serve` and `ichido worker` at start, naming
`ichido migrate`, and concurrent `ichido migrate` runs are safe.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict
from typing import Iterator

import httpx
import psycopg
import pytest

from ichido.schema import CORE_SCHEMA
from tests.conftest import POSTGRES_URL
from tests.support import (
    ROOT,
    SECRET,
    ServerProcess,
    WorkerProcess,
    cli_env,
    deliver,
    effect_counts,
    effects_schema,
    event_id_of,
    free_port,
    make_event,
    open_store,
    postgres_schema,
    run_cli,
    wait_for_output,
    wait_until,
)

EFFECTS_APP = "tests.apps.effects:app"
MIGRATION_LOCK = 0x1C41D0  # ichido's migration advisory lock (inbox/postgres.py)


def test_three_receivers_and_three_worker_processes_apply_each_event_once(
        postgres_url: str, redis_url: str) -> None:
    env = {"ICHIDO_REDIS_URL": redis_url}
    receivers = [ServerProcess(postgres_url, workers=0, env=env) for _ in range(3)]
    workers = [WorkerProcess(postgres_url, concurrency=2) for _ in range(3)]
    bodies = [make_event("payment_intent.succeeded") for _ in range(150)]
    answers: dict[str, list[tuple[int, str]]] = defaultdict(list)
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(receivers))

    def send(receiver: ServerProcess) -> None:  # every event to every receiver, all at once
        try:
            with httpx.Client(timeout=60) as client:
                for body in bodies:
                    barrier.wait(timeout=60)
                    response = deliver(receiver.url, body, client)
                    with lock:
                        answers[event_id_of(body)].append(
                            (response.status_code, response.json()["status"]))
        except BaseException as exc:  # reported below, not lost in the thread
            barrier.abort()
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(r,)) for r in receivers]
    try:
        for worker in workers:
            wait_for_output(worker, "worker thread")
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        inbox = open_store(postgres_url)
        wait_until(lambda: inbox.stats()["processed"] == len(bodies), message="all processed")
        for worker in workers:
            assert worker.proc.poll() is None, worker.output()
    finally:
        for receiver in receivers:
            receiver.stop()
        for worker in workers:
            worker.kill()

    assert len(answers) == len(bodies)
    for event_id, trio in answers.items():
        assert sorted(trio) == [(200, "accepted"), (200, "duplicate"), (200, "duplicate")], trio
    assert effect_counts(inbox) == {event_id_of(body): 1 for body in bodies}
    with inbox.reading() as tx:  # SKIP LOCKED: no event was ever claimed by two workers
        attempts = dict(tx.execute("SELECT attempts, count(*) FROM ichido_events"
                                   " GROUP BY attempts").fetchall())
    assert attempts == {1: len(bodies)}
    stats = inbox.stats()
    assert (stats["received"], stats["unique"]) == (3 * len(bodies), len(bodies))
    assert stats["received"] == (stats["unique"] + stats["duplicates_cache"]
                                 + stats["duplicates_durable"])


# -- migrations ---------------------------------------------------------------------------------

@pytest.fixture
def bare_schema(postgres_admin: psycopg.Connection) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema with nothing in it: (url, schema name)."""
    with postgres_schema(POSTGRES_URL, prefix="ichido_m") as url:
        yield url, url.rsplit("%3D", 1)[1]


def schema_state(admin: psycopg.Connection, schema: str) -> tuple[list, list]:
    tables = [r[0] for r in admin.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
        " ORDER BY 1", (schema,)).fetchall()]
    steps = []
    if "ichido_schema" in tables:
        steps = admin.execute(f"SELECT component, version FROM {schema}.ichido_schema"
                              " ORDER BY 1, 2").fetchall()
    return tables, steps


def serve_once(url: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`ichido serve` until it exits by itself (it must, on a schema that is behind)."""
    return subprocess.run(
        [sys.executable, "-m", "ichido", "serve", "--app", EFFECTS_APP, "--workers", "1",
         "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env=cli_env(url, STRIPE_WEBHOOK_SECRET=SECRET))


@pytest.mark.parametrize("behind", ["nothing migrated", "app tables missing"])
def test_a_schema_that_is_behind_stops_serve_and_worker_naming_ichido_migrate(
        postgres_admin: psycopg.Connection, bare_schema: tuple[str, str], behind: str) -> None:
    url, schema = bare_schema
    if behind == "app tables missing":  # ichido's own tables only: the app's are behind
        done = run_cli("migrate", database_url=url)
        assert done.returncode == 0, done.stderr
    before = schema_state(postgres_admin, schema)

    served = serve_once(url)
    worked = run_cli("worker", "--app", EFFECTS_APP, database_url=url)

    for done in (served, worked):  # one clear line, not a traceback
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert "[schema_outdated]" in output and "ichido migrate" in output, output
        assert "Traceback" not in output, output
    assert schema_state(postgres_admin, schema) == before  # never a silent change

    migrated = run_cli("migrate", "--app", EFFECTS_APP, database_url=url)
    assert migrated.returncode == 0, migrated.stderr
    tables, steps = schema_state(postgres_admin, schema)
    assert "effects" in tables and ("test_effects", 1) in steps
    server = ServerProcess(url, workers=1)  # now it starts, and works
    try:
        with httpx.Client(timeout=30) as client:
            body = make_event("payment_intent.succeeded")
            assert deliver(server.url, body, client).json()["status"] == "accepted"
        inbox = open_store(url)
        wait_until(lambda: effect_counts(inbox) == {event_id_of(body): 1},
                   message="the event applied")
        inbox.close()
    finally:
        server.stop()


def waiting_on_migration_lock(admin: psycopg.Connection, application: str) -> int:
    """How many of ``application``'s connections wait on the lock (which is one for the whole
    server: other tests' migrations, side by side, may wait on it too)."""
    return admin.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND NOT l.granted AND l.classid = 0 AND l.objid = %s"
        " AND a.application_name = %s", (MIGRATION_LOCK, application)).fetchone()[0]


def test_concurrent_migrate_runs_are_safe(postgres_admin: psycopg.Connection,
                                         bare_schema: tuple[str, str]) -> None:
    url, schema = bare_schema
    runs = 4
    # Hold ichido's migration lock so that every run gets past its "what is pending?" look-up
    # and queues for the same first step; then let them all go at once. (If ichido locked
    # some other way, the runs simply go ahead: the outcome below is what is checked.)
    holder = psycopg.connect(POSTGRES_URL, autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        procs = [subprocess.Popen([sys.executable, "-m", "ichido", "migrate", "--app", EFFECTS_APP],
                                  cwd=ROOT, env=cli_env(url, PGAPPNAME=schema),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(runs)]
        deadline = time.monotonic() + 30
        while (time.monotonic() < deadline
               and waiting_on_migration_lock(postgres_admin, schema) < runs
               and any(p.poll() is None for p in procs)):
            time.sleep(0.05)
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        holder.close()
    outputs = [p.communicate(timeout=60)[0] for p in procs]

    assert [p.returncode for p in procs] == [0] * runs, outputs
    tables, steps = schema_state(postgres_admin, schema)
    expected = sorted({(c, v) for c, v, _ in (*CORE_SCHEMA, *effects_schema())})
    assert steps == expected  # each step applied exactly once
    assert {"ichido_events", "effects"} <= set(tables)
    again = run_cli("migrate", "--app", EFFECTS_APP, database_url=url)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert schema_state(postgres_admin, schema) == (tables, steps)
