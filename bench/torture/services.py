"""What a torture run owns and breaks: a PostgreSQL and a Redis of its own (restarting or
flushing the machine's shared servers would break everyone else's runs), and the
``ichido serve`` receivers and ``ichido worker`` workers it kills and starts again."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

from ichido.testing import IchidoProcess
from ichido.testing.servers import PostgresCluster, RedisServer

ROOT = Path(__file__).resolve().parent.parent.parent


def log(message: str) -> None:
    print(f"[torture {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Service(IchidoProcess):
    """A receiver or worker that a fault may kill at any moment."""

    def start_and_wait(self, timeout: float = 120.0) -> None:
        """Start (again, after a crash) and wait until ready; a start that fails (say, while
        PostgreSQL restarts) is tried again until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                self.launch()
            try:
                self.wait_ready(max(1.0, deadline - time.monotonic()))
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")
            time.sleep(0.5)


class Fleet:
    """The private servers and the processes under test, on one store.

    ``env`` is what every process sees besides the store (secret, app settings, tunings).
    ``sqlite``: the store is that SQLite file (the embedded default: no servers, each
    receiver's seen tier in its own memory) instead of a private PostgreSQL + Redis.
    """

    def __init__(self, logs: Path, *, app: str, receivers: int, workers: int,
                 worker_threads: int, env: Mapping[str, str],
                 postgres_settings: Mapping[str, str] | None = None,
                 sqlite: Path | None = None) -> None:
        self.logs, self.app, self.sqlite = logs, app, sqlite
        self.postgres = None if sqlite else PostgresCluster(settings=postgres_settings)
        self.redis = None if sqlite else RedisServer()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ICHIDO_", "STRIPE_"))}
        store = ({"ICHIDO_DATABASE_URL": f"sqlite:///{sqlite}"} if sqlite else
                 {"ICHIDO_DATABASE_URL": self.postgres.url, "ICHIDO_REDIS_URL": self.redis.url})
        self.env = {**base, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                        base.get("PYTHONPATH")])),
                    **store, **env}
        self.database_url = store["ICHIDO_DATABASE_URL"]
        common = {"env": self.env, "cwd": ROOT, "new_session": True}
        self.receivers = [Service.serve(app=app, workers=0, name=f"receiver-{n}",
                                        log_path=logs / f"receiver-{n}.log", **common)
                          for n in range(receivers)]
        self.workers = [Service.worker(app=app, concurrency=worker_threads, name=f"worker-{n}",
                                       log_path=logs / f"worker-{n}.log", **common)
                        for n in range(workers)]

    @property
    def services(self) -> list[Service]:
        return [*self.receivers, *self.workers]

    def start_servers(self) -> None:
        """The private PostgreSQL and Redis, and the app's schema (``ichido migrate --app``)."""
        if self.postgres and self.redis:
            self.postgres.start()
            self.redis.start()
        done = subprocess.run([sys.executable, "-m", "ichido", "migrate", "--app", self.app],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"ichido migrate failed: {done.stdout}{done.stderr}")

    def start_services(self) -> None:
        for service in self.services:
            if not service.running():
                service.launch()
        for service in self.services:
            service.start_and_wait()

    def stop_services(self) -> None:
        for service in self.services:
            with contextlib.suppress(Exception):
                service.stop(30)

    def close(self, keep: bool = False) -> None:
        """Stop everything; ``keep``: leave the servers' files (their paths are logged)."""
        self.stop_services()
        if not (self.postgres and self.redis):
            if keep:
                log(f"kept: the SQLite store {self.sqlite}, logs in {self.logs}")
            return
        if keep:
            self.redis.stop()
            with contextlib.suppress(Exception):
                self.postgres.stop()
            log(f"kept: PostgreSQL data in {self.postgres.data}, logs in {self.logs}")
            return
        self.redis.close()
        self.postgres.close()
