"""Private PostgreSQL and Redis servers, for the fault tests that must not reach the shared ones:
a test that restarts or flushes a server of its own harms no other test running beside it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from ichido.testing import free_port, postgres_up, wait_until

def _as_postgres(command: Sequence[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (``ICHIDO_PG_BIN`` overrides it)."""
    if os.environ.get("ICHIDO_PG_BIN"):
        return Path(os.environ["ICHIDO_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("no PostgreSQL server binaries (pg_ctl, initdb) found")


class PostgresCluster:
    """A PostgreSQL server of its own (``initdb`` into a temp dir, on a free port), for runs
    that stop and start their database: restarting a shared server breaks everyone's runs."""

    def __init__(self, *, port: int | None = None, settings: Mapping[str, str] | None = None
                 ) -> None:
        self.port = port or free_port()
        self.bin = postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="ichido-pg-"))
        self.data = self.dir / "data"
        self.settings = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                         "unix_socket_directories": str(self.dir), "max_connections": "200",
                         "shared_buffers": "128MB", **(settings or {})}
        self.restarts = 0
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data),
                                            *args]), capture_output=True, text=True,
                              timeout=timeout, cwd=self.dir)
        if done.returncode:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def start(self) -> "PostgresCluster":
        if not self.data.exists():
            done = subprocess.run(_as_postgres([
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=trust", "--no-sync", "-E", "UTF8"]), capture_output=True, text=True,
                timeout=300, cwd=self.dir)
            if done.returncode:
                raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
        options = " ".join(f"-c {key}={value}" for key, value in self.settings.items())
        self._ctl("start", "-w", "-t", "120", "-l", str(self.dir / "server.log"), "-o", options)
        wait_until(lambda: postgres_up(self.url), timeout=60, interval=0.1,
                   message="the private PostgreSQL to accept connections")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` cuts every connection and shuts down cleanly; ``immediate`` is a crash
        (the server recovers from its write-ahead log when started again)."""
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", "-w", "-m", mode)

    def restart(self, *, down_seconds: float = 0.0, mode: str = "fast") -> None:
        try:
            self.stop(mode)
            time.sleep(down_seconds)  # an outage of this length, not a synchronisation
        finally:
            self.start()
        self.restarts += 1

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def redis_up(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisServer:
    """A redis-server of its own on a free port (no persistence), so that a ``FLUSHALL`` or a
    restart reaches nobody else's keys."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="ichido-redis-"))
        self.flushes = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir)], stdout=log,
                stderr=subprocess.STDOUT, cwd=self.dir)
        wait_until(lambda: redis_up(self.url), timeout=30, interval=0.05,
                   message="the private Redis to answer")
        return self

    def flushall(self) -> None:
        """Forget every key: what a Redis restart without persistence, or a failover, does."""
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=10)
        try:
            client.flushall()
        finally:
            client.close()
        self.flushes += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
