"""A fresh store per server (a SQLite file, or a PostgreSQL schema with Redis), and reading it.

The schema comes from ``ichido.testing.postgres_schema``, as in the tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from bench.report import say
from bench.processes import ichido_cli
from bench.stream import SECRET
from ichido.testing import postgres_schema

POSTGRES_URL = os.environ.get("ICHIDO_BENCH_POSTGRES_URL",
                              os.environ.get("ICHIDO_TEST_POSTGRES_URL",
                                             "postgresql://postgres@127.0.0.1:5432/test"))
REDIS_URL = os.environ.get("ICHIDO_BENCH_REDIS_URL",
                           os.environ.get("ICHIDO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
BACKENDS = ("sqlite", "postgres+redis")


@dataclass
class Store:
    """One fresh store for one server: its environment and how to read it from here."""

    backend: str
    database_url: str
    redis_url: str | None

    @property
    def env(self) -> dict[str, str]:
        env = {"ICHIDO_DATABASE_URL": self.database_url, "STRIPE_WEBHOOK_SECRET": SECRET,
               "ICHIDO_REDIS_URL": self.redis_url or ""}
        return env

    def count(self, sql: str) -> int:
        return int(self.rows(sql)[0][0])

    def events_stored(self) -> int:
        """Every event the store holds, wherever the inbox keeps it (SQLite's intake too)."""
        from ichido.config import Settings
        from ichido.schema import open_inbox

        inbox = open_inbox(Settings(database_url=self.database_url))
        try:
            return inbox.stats()["unique"]
        finally:
            inbox.close()

    def rows(self, sql: str) -> list[tuple]:
        if self.database_url.startswith("sqlite"):
            import sqlite3

            conn = sqlite3.connect(self.database_url.split("///", 1)[1], timeout=30)
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql).fetchall()


@contextlib.contextmanager
def fresh_store(backend: str, tag: str, workdir: Path) -> Iterator[Store]:
    """A new SQLite file under ``workdir``, or a new PostgreSQL schema (dropped afterwards)
    plus Redis db 15 with a fresh key prefix (ichido's keys are namespaced by store id)."""
    if backend == "sqlite":
        path = workdir / f"{tag}-{uuid.uuid4().hex[:8]}.db"
        yield Store(backend, f"sqlite:///{path}", None)
        return
    if backend not in ("postgres", "postgres+redis"):
        raise ValueError(backend)
    tag = tag.replace("-", "_")
    import psycopg
    import redis

    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_schema(POSTGRES_URL, prefix=f"bench_{tag}"))
        except psycopg.Error as exc:
            raise SystemExit(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}") from None
        store = Store(backend, url, REDIS_URL if backend == "postgres+redis" else None)
        try:
            yield store
        finally:
            if store.redis_url:  # ichido's seen keys live under its store id
                with contextlib.suppress(psycopg.Error, IndexError, redis.RedisError):
                    (store_id,), = store.rows("SELECT id FROM ichido_store")
                    delete_redis_prefix(store.redis_url, f"ichido:seen:{store_id}:*")


def check_services(backends: Sequence[str]) -> list[str]:
    """Backends whose servers answer; print why the others are skipped."""
    ok = []
    for backend in backends:
        if backend == "sqlite":
            ok.append(backend)
            continue
        try:
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            if backend == "postgres+redis":
                import redis

                client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
                client.ping()
                client.close()
            ok.append(backend)
        except Exception as exc:  # noqa: BLE001 - report and skip
            say(f"skipping {backend}: server not reachable ({exc})")
    return ok


def migrate(store: Store, app: str | None = None) -> None:
    """``ichido migrate [--app]`` as a deployment runs it (SQLite migrates itself anyway)."""
    ichido_cli("migrate", *(("--app", app) if app else ()), env=store.env)


def delete_redis_prefix(url: str, pattern: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        batch = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temp directory for stores and request files (never inside the repository)."""
    path = Path(tempfile.mkdtemp(prefix=f"ichido-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


