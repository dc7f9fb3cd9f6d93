"""Helpers shared by the tests: events, signatures, ichido processes, the CLI, storage reads.

The processes, ports, waits and PostgreSQL schemas come from ``ichido.testing`` (shared with
bench/); this module adds what only these tests need: their secret, their effects app, and
the ways they look at what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, Sequence, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from ichido import signature
from ichido.testing import (  # noqa: F401 - re-exported for the test modules
    IchidoProcess,
    free_port,
    postgres_schema,
    postgres_up,
    wait_until,
)
from ichido.testing.servers import PostgresCluster, RedisServer, redis_up  # noqa: F401

SECRET = "whsec_test_0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent
EFFECTS_APP = "tests.apps.effects:app"
T = TypeVar("T")


def make_event(type: str = "payment_intent.succeeded", *, id: str | None = None,
               object_id: str | None = None, created: int | None = None,
               obj: dict[str, Any] | None = None, **extra: Any) -> bytes:
    """A Stripe-shaped event body (about the size of a real one when ``obj`` is given)."""
    event_id = id or f"evt_{uuid.uuid4().hex[:24]}"
    data_object = obj if obj is not None else {"id": object_id or f"pi_{uuid.uuid4().hex[:24]}",
                                               "object": type.split(".")[0]}
    doc = {"id": event_id, "object": "event", "api_version": "2026-10-28.endive",
           "created": int(time.time()) if created is None else created,
           "data": {"object": data_object}, "livemode": False, "pending_webhooks": 1,
           "request": {"id": None, "idempotency_key": None}, "type": type, **extra}
    return orjson.dumps(doc)


def signed_headers(body: bytes, secrets: Sequence[str] = (SECRET,),
                   timestamp: int | None = None) -> dict[str, str]:
    return {"Stripe-Signature": signature.sign(body, secrets, timestamp),
            "Content-Type": "application/json; charset=utf-8"}


def effects_schema() -> list:
    """The schema steps of tests/apps/effects.py: its ``effects`` table has NO unique constraint,
    so a second application of an event shows up as a second row."""
    from tests.apps.effects import app as effects_app

    return list(effects_app.schema)


def migrate_effects(database_url: str) -> None:
    """Create the effects table the way a deployment would (``ichido migrate --app``)."""
    from ichido import App
    from ichido.config import Settings

    App(Settings(database_url=database_url), workers=0, schema=effects_schema()).migrate()


def in_process_app(settings: Any, **changes: Any):
    """An ``ichido.App`` with no worker threads and the effects table migrated; register its
    handlers with ``app.on``, drive its worker with ``app.worker().run_once()``."""
    from ichido import App

    app = App(settings.with_(**changes) if changes else settings, workers=0,
              schema=effects_schema())
    app.migrate()
    app.start()
    return app


class Store:
    """The inbox of ``database_url`` with its database, as any process would open them; the
    inbox's methods are its own, ``reading`` and ``transaction`` the database's."""

    def __init__(self, database_url: str) -> None:
        from ichido.config import Settings
        from ichido.db import open_database
        from ichido.schema import open_inbox

        settings = Settings(database_url=database_url)
        self.database = open_database(settings)
        self.inbox = open_inbox(settings, self.database)
        self.reading, self.transaction = self.database.reading, self.database.transaction

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inbox, name)

    def close(self) -> None:
        self.inbox.close()
        self.database.close()


def open_store(database_url: str) -> Store:
    return Store(database_url)


def effect_counts(inbox: Any) -> Counter:
    """event id → number of rows in the effects table (backend-neutral: uses ``?`` params)."""
    with inbox.reading() as tx:
        rows = tx.execute("SELECT event_id FROM effects").fetchall()
    return Counter(row[0] for row in rows)


def settle_intake(app: Any) -> None:
    """Move SQLite's intake into ``ichido_events``, as a worker's claim would, so that a test
    can look at (and age) the rows there before any claim; other stores have nothing to do."""
    settle = getattr(app.inbox, "settle_intake", None)
    if settle is not None:
        settle()


def record_effect(event: Any, tx: Any) -> None:
    """A handler body for in-process apps: one effects row per application."""
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (event.id, event.type, event.attempt))


def event_id_of(body: bytes) -> str:
    return orjson.loads(body)["id"]


def cli_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: no webhook secret unless asked for."""
    env = {k: v for k, v in os.environ.items()
           if k != "STRIPE_WEBHOOK_SECRET" and not k.startswith("ICHIDO_")}
    env["PYTHONPATH"] = str(ROOT)
    if database_url is not None:
        env["ICHIDO_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_cli(*args: str, database_url: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess:
    """``python -m ichido ARGS`` in a subprocess; stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "ichido", *args], cwd=ROOT,
                          env={**cli_env(database_url), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def run_cli_many(*commands: Sequence[str], database_url: str | None = None,
                 timeout: float = 60.0) -> list[subprocess.CompletedProcess]:
    """Several independent ``python -m ichido`` commands at once (read-only ones: the CLI's
    start-up dominates, so running them side by side keeps the suite fast)."""
    env = cli_env(database_url)
    procs = [subprocess.Popen([sys.executable, "-m", "ichido", *args], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in commands]
    results = []
    for args, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


def json_of(done: subprocess.CompletedProcess) -> Any:
    assert done.returncode == 0, f"ichido {' '.join(done.args)} failed: {done.stderr}"
    return json.loads(done.stdout)


def cli_json(*args: str, database_url: str) -> Any:
    """Run a ``--json`` command and parse what it printed; fail loudly on a non-zero exit."""
    done = run_cli(*args, "--json", database_url=database_url)
    assert done.returncode == 0, f"ichido {' '.join(args)} failed: {done.stderr}"
    return json.loads(done.stdout)


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(make())


def asgi_client(app: Any) -> httpx.AsyncClient:
    """An httpx client talking to an ASGI app in this process (no lifespan, no sockets)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ichido.test")


async def post_async(client: httpx.AsyncClient, body: bytes, *,
                     headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/webhooks/stripe", content=body,
                             headers=signed_headers(body) if headers is None else headers)


def forget_seen(cache: Any, event_ids: Sequence[str]) -> None:
    """Make a seen tier forget these ids, as a flush, a restart or a lapsed TTL would.

    A shared tier (Redis) forgets only the given ids, so that suites running side by side on
    one Redis do not flush each other's ids; an in-process tier is simply cleared.
    """
    client, prefix = getattr(cache, "client", None), getattr(cache, "prefix", None)
    if client is not None and prefix is not None:
        if event_ids:
            client.delete(*[prefix + event_id for event_id in event_ids])
    else:
        cache.clear()


def tiers_match(actual: Sequence[str], expected: Sequence[str], *, remote_tier: bool) -> bool:
    """Compare answers ("accepted", "cache", "durable") with a model's.

    Exact, except that a remote seen tier (Redis) may miss: it mutes itself for a moment after a
    slow reply, as a hint may. Then a copy the model expects from "cache" comes from "durable"
    instead; it must never come back "accepted".
    """
    return len(actual) == len(expected) and all(
        a == e or (remote_tier and e == "cache" and a == "durable")
        for a, e in zip(actual, expected))


# -- ichido as a subprocess, running the effects app ----------------------------------------------

def process_env(database_url: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """What a test's ``ichido`` subprocess sees: its store, the tests' secret, this checkout."""
    return {**os.environ, "ICHIDO_DATABASE_URL": database_url, "STRIPE_WEBHOOK_SECRET": SECRET,
            "PYTHONPATH": str(ROOT), "ICHIDO_POLL_INTERVAL": "0.05", **(env or {})}


def migrate_app(app: str, env: dict[str, str]) -> None:
    """The app's own tables, as a deployment runs ``ichido migrate --app`` before serving."""
    if app == EFFECTS_APP:  # in-process: quicker, and the same steps
        migrate_effects(env["ICHIDO_DATABASE_URL"])
        return
    subprocess.run([sys.executable, "-m", "ichido", "migrate", "--app", app], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)


class ServerProcess(IchidoProcess):
    """``ichido serve`` running tests/apps/effects.py (or ``app``), started and healthy."""

    def __init__(self, database_url: str, *, app: str | None = EFFECTS_APP, workers: int = 1,
                 env: dict[str, str] | None = None, migrate: bool = True) -> None:
        """``migrate=False``: the caller migrated already."""
        full_env = process_env(database_url, env)
        if app and migrate:
            migrate_app(app, full_env)
        port = free_port()
        args = ["serve", "--port", str(port), "--workers", str(workers)]
        super().__init__([*args, "--app", app] if app else args, env=full_env, port=port,
                         cwd=ROOT, name="serve")
        self.start(timeout=30)

    def post(self, body: bytes, client: httpx.Client | None = None,
             **kwargs: Any) -> httpx.Response:
        sender = client or httpx
        return sender.post(f"{self.url}/webhooks/stripe", content=body,
                           headers=signed_headers(body), **kwargs)


def start_server(database_url: str, **kwargs: Any) -> ServerProcess:
    """``ServerProcess`` running tests/apps/effects.py."""
    return ServerProcess(database_url, **kwargs)


class WorkerProcess(IchidoProcess):
    """``ichido worker`` running the effects app (or ``app``), launched, not waited for: a test
    waits with ``wait_for_output(worker, "worker thread")`` when it needs it up."""

    def __init__(self, database_url: str, *, app: str = EFFECTS_APP, concurrency: int = 1,
                 env: dict[str, str] | None = None) -> None:
        full_env = process_env(database_url, env)
        migrate_app(app, full_env)
        super().__init__(["worker", "--app", app, "--concurrency", str(concurrency)],
                         env=full_env, cwd=ROOT, name="worker")
        self.launch()


def wait_for_output(process: IchidoProcess, text: str, timeout: float = 60.0) -> None:
    """Wait until a process has printed ``text`` (its start-up line, say)."""
    def printed() -> bool:
        if not process.running():
            raise AssertionError(f"the process exited: {process.output()}")
        return text in process.output()

    wait_until(printed, timeout=timeout, interval=0.05, message=f"{text!r} in the output")


# -- the servers, and how the fault tests read them ---------------------------------------------

def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_url_with_db(url: str, db: int) -> str:
    """The same server, another logical database (so a FLUSHDB disturbs nobody else's keys)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@contextlib.contextmanager
def migrated_schema(base_url: str, *, app: str = EFFECTS_APP) -> Iterator[str]:
    """``postgres_schema`` with ichido's tables and ``app``'s migrated by ``ichido migrate``."""
    with postgres_schema(base_url, prefix="ichido_f") as url:
        done = run_cli("migrate", "--app", app, database_url=url)
        assert done.returncode == 0, done.stderr
        yield url


def finished(inbox: Any, total: int) -> bool:
    """``total`` events processed, none pending, in work or waiting for a retry."""
    stats = inbox.stats()
    return (stats["processed"] == total
            and stats["pending"] == stats["processing"] == stats["retrying"] == 0)


def deliver(url: str, body: bytes, client: httpx.Client, *, attempts: int = 30,
            pause: float = 0.2) -> httpx.Response:
    """Post a signed event as Stripe would: a 5xx or no answer is retried (bounded)."""
    response = None
    for _ in range(attempts):
        try:
            response = client.post(f"{url}/webhooks/stripe", content=body,
                                   headers=signed_headers(body))
        except httpx.HTTPError:
            time.sleep(pause)
            continue
        if response.status_code < 500:
            return response
        time.sleep(pause)
    raise AssertionError(f"not delivered after {attempts} attempts: "
                         f"{response.status_code if response else 'no answer'}")


def answers_of(url: str, bodies: list[bytes], client: httpx.Client) -> list[tuple[int, dict]]:
    """Each body delivered (retried as Stripe retries): its status and JSON answer."""
    out = []
    for body in bodies:
        response = deliver(url, body, client)
        out.append((response.status_code, response.json()))
    return out


def tier(answer: dict) -> str:
    """Which tier answered: "cache" or "durable" for a duplicate, else the status."""
    return answer.get("tier") or answer["status"]


def stop_all(*processes: IchidoProcess) -> None:
    for process in processes:
        process.stop()
