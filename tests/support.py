"""Helpers shared by the tests: events, signatures, and an `ichido serve` subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import httpx
import orjson

from ichido import signature

SECRET = "whsec_test_0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`ichido serve` in a real subprocess, for crash and concurrency tests."""

    def __init__(self, database_url: str, *, app: str | None = "tests.apps.effects:app",
                 workers: int = 1, env: dict[str, str] | None = None,
                 migrate: bool = True) -> None:
        """``migrate=False`` skips the ``ichido migrate --app`` subprocess, for callers that
        migrated already (e.g. with ``migrate_effects``, in-process and quicker)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "ichido", "serve", "--port", str(self.port),
                "--workers", str(workers)]
        if app:
            args += ["--app", app]
        full_env = {**os.environ, "ICHIDO_DATABASE_URL": database_url,
                    "STRIPE_WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT),
                    "ICHIDO_POLL_INTERVAL": "0.05", **(env or {})}
        if app and migrate:  # the app's own tables, as a deployment runs `ichido migrate` first
            subprocess.run([sys.executable, "-m", "ichido", "migrate", "--app", app], cwd=ROOT,
                           env=full_env, check=True, capture_output=True)
        self.proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ichido serve exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("ichido serve did not become healthy in time")

    def post(self, body: bytes, client: httpx.Client | None = None, **kwargs: Any) -> httpx.Response:
        sender = client or httpx
        return sender.post(f"{self.url}/webhooks/stripe", content=body,
                           headers=signed_headers(body), **kwargs)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing: what a crash looks like."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: the graceful path."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        if self.proc.stdout is None or self.proc.poll() is None:
            return ""
        return self.proc.stdout.read().decode(errors="replace")


# -- added helpers: waiting, storage inspection, the CLI, in-process HTTP, worker processes -------

import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Awaitable, Callable, TypeVar  # noqa: E402

T = TypeVar("T")

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


def wait_until(predicate: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.02,
               message: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after a generous deadline.

    Deadlines are for hung tests only: nothing here asserts how fast anything is.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


class Store:
    """The inbox of ``database_url`` with its database, as any process would open them; the
    inbox's methods are its own, ``reading`` and ``transaction`` the database's."""

    def __init__(self, database_url: str) -> None:
        from ichido.config import Settings
        from ichido.db import open_database
        from ichido.inbox import open_inbox

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


def start_server(database_url: str, **kwargs: Any) -> ServerProcess:
    """``ServerProcess`` running tests/apps/effects.py, its table migrated in-process."""
    migrate_effects(database_url)
    return ServerProcess(database_url, migrate=False, **kwargs)


class WorkerProcess:
    """`ichido worker` in a real subprocess; its output goes to a file (read with ``output``)."""

    def __init__(self, database_url: str, *, app: str = "tests.apps.effects:app",
                 concurrency: int = 1, env: dict[str, str] | None = None) -> None:
        self._log = tempfile.TemporaryFile()
        full_env = {**os.environ, "ICHIDO_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT),
                    "ICHIDO_POLL_INTERVAL": "0.05", **(env or {})}
        if app == "tests.apps.effects:app":
            migrate_effects(database_url)
        else:
            subprocess.run([sys.executable, "-m", "ichido", "migrate", "--app", app], cwd=ROOT,
                           env=full_env, check=True, capture_output=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ichido", "worker", "--app", app,
             "--concurrency", str(concurrency)],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


# -- added for the fault, scale-out and torture tests: the real servers, stopped and started ----

import contextlib  # noqa: E402
import shlex  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

#: How to stop and start the machine's PostgreSQL and Redis (overridable for other set-ups).
PG_STOP = os.environ.get("ICHIDO_TEST_PG_STOP",
                         "pg_ctlcluster --skip-systemctl-redirect 15 main stop")
PG_START = os.environ.get("ICHIDO_TEST_PG_START",
                          "pg_ctlcluster --skip-systemctl-redirect 15 main start")
REDIS_START = os.environ.get(
    "ICHIDO_TEST_REDIS_START",
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port {port} --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log")


def postgres_up(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def start_postgres(url: str) -> None:
    """Start the server unless it answers already; wait (bounded) until it accepts connections."""
    for _ in range(3):
        if postgres_up(url):
            return
        subprocess.run(shlex.split(PG_START), capture_output=True, timeout=120)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: postgres_up(url), timeout=30, interval=0.2,
                       message="PostgreSQL to accept connections")
            return
    raise AssertionError("PostgreSQL did not come back: start it by hand "
                         f"({PG_START})")


@contextlib.contextmanager
def postgres_stopped(url: str):
    """A real outage: the server is stopped (every connection is cut), and started again on
    the way out whatever happens inside, so no test leaves PostgreSQL down."""
    try:
        done = subprocess.run(shlex.split(PG_STOP), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"could not stop PostgreSQL: {done.stderr}"
        assert not postgres_up(url), "PostgreSQL still answers after being stopped"
        yield
    finally:
        start_postgres(url)


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_up(url: str) -> bool:
    import redis

    client = redis_client(url)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_redis(url: str) -> None:
    if redis_up(url):
        return
    port = urlsplit(url).port or 6379
    subprocess.run(shlex.split(REDIS_START.format(port=port)), capture_output=True, timeout=60)
    wait_until(lambda: redis_up(url), timeout=30, interval=0.1, message="Redis to come back")


@contextlib.contextmanager
def redis_stopped(url: str):
    """Redis shut down for real (``SHUTDOWN NOSAVE``), started again on the way out."""
    import redis

    try:
        client = redis_client(url)
        with contextlib.suppress(redis.ConnectionError):  # it closes the socket as it goes
            client.shutdown(nosave=True)
        client.close()
        wait_until(lambda: not redis_up(url), timeout=30, message="Redis to stop")
        yield
    finally:
        start_redis(url)


def redis_url_with_db(url: str, db: int) -> str:
    """The same server, another logical database (so a FLUSHDB disturbs nobody else's keys)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@contextlib.contextmanager
def fresh_postgres_schema(base_url: str, *, migrate_app: str | None = None):
    """A new PostgreSQL schema on its own connections (never the session's admin connection,
    which a server restart would cut), dropped afterwards even if the server was restarted.
    ``migrate_app``: run ``ichido migrate --app`` on it first (as a deployment would)."""
    import psycopg

    schema = f"ichido_f_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base_url else "?"
    url = f"{base_url}{separator}options=-csearch_path%3D{schema}"
    try:
        if migrate_app:
            done = run_cli("migrate", "--app", migrate_app, database_url=url)
            assert done.returncode == 0, done.stderr
        yield url
    finally:
        start_postgres(base_url)
        with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def reconnect_session_postgres(request: Any, base_url: str) -> None:
    """After a server restart, give the session-scoped ``postgres_admin`` fixture (conftest) a
    live connection again, so the tests that run after this one are not broken by it.

    pytest has no public way to replace a cached fixture value; this uses its FixtureDef cache,
    and does nothing when that is not available or the connection is still alive.
    """
    import psycopg

    try:
        fixturedef = request._get_active_fixturedef("postgres_admin")
        cached = fixturedef.cached_result
    except Exception:  # another pytest, or the fixture is not in use: nothing to mend
        return
    if not cached or cached[2] is not None:
        return
    conn = cached[0]
    try:
        conn.execute("SELECT 1")
        return
    except psycopg.Error:
        pass
    fresh = psycopg.connect(base_url, autocommit=True, connect_timeout=5)
    fixturedef.cached_result = (fresh, cached[1], None)
    request.config.add_cleanup(fresh.close)


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


def wait_for_output(process: Any, text: str, timeout: float = 60.0) -> None:
    """Wait until a ``WorkerProcess`` has printed ``text`` (its start-up line, say)."""
    def printed() -> bool:
        if process.proc.poll() is not None:
            raise AssertionError(f"the process exited: {process.output()}")
        return text in process.output()

    wait_until(printed, timeout=timeout, interval=0.05, message=f"{text!r} in the output")
