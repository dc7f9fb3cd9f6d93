"""Real processes and real servers for testing ichido, and apps built on it.

Written once for tests/ and bench/ alike: a free port; ``ichido serve`` and ``ichido worker`` as
subprocesses that can be ``kill -9``-ed and started again on the same port; a PostgreSQL schema
per test; and private PostgreSQL and Redis servers that a fault test may restart or flush
without disturbing anyone else who shares the machine's servers.

Deadlines here are for hung runs only: nothing in this module asserts how fast anything is.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

import httpx

T = TypeVar("T")


_RANDOM = random.SystemRandom()  # not the random module's: a test may seed that one


def _ephemeral_start() -> int:
    """Where the ports the kernel picks for outgoing connections begin (Linux; else its default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now.

    Taken at random below the kernel's ephemeral range: a port the kernel hands out (``bind``
    to 0) can go to any outgoing connection before the server that was given it binds it, or
    while it is down for a restart; many tests side by side make that likely enough to fail.
    """
    top = min(_ephemeral_start(), 32768)
    for _ in range(200 if top > 21000 else 0):
        port = _RANDOM.randrange(20000, top)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a machine with an unusual port range: let the kernel pick
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.02,
               message: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy, which is returned; raise
    ``AssertionError`` after ``timeout`` seconds (a generous bound, for hung runs only)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


# -- ichido as a subprocess ------------------------------------------------------------------------

def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


class IchidoProcess:
    """One ``python -m ichido ARGS`` process (``serve`` or ``worker``), its output in a file.

    It keeps its port across restarts, so a sender can go on delivering to the same URL after a
    ``kill()`` and ``start()``. Ready means: with a port, ``ready_path`` answers below 500
    (ichido's ``/healthz`` says 503 until its store answers); without one, the output of this
    start contains ``ready_text`` (a worker's start-up line). ``module`` runs another
    ``python -m`` server the same way (a benchmark's comparison app).
    """

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None,
                 port: int | None = None, cwd: str | Path | None = None,
                 log_path: str | Path | None = None, ready_text: str = "worker thread",
                 ready_path: str = "/healthz", name: str = "ichido", module: str = "ichido",
                 new_session: bool = False) -> None:
        self.args = [sys.executable, "-m", module, *args]
        self.ready_path = ready_path
        self.env = {**os.environ, **(env or {})}
        self.port, self.cwd, self.name = port, cwd, name
        self.ready_text = ready_text.encode()
        self.new_session = new_session
        if log_path is None:  # a temp file of its own, removed with this object at the latest
            handle, log_path = tempfile.mkstemp(prefix=f"ichido-{name}-", suffix=".log")
            os.close(handle)
            weakref.finalize(self, _remove, Path(log_path))
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._offset = 0

    @classmethod
    def serve(cls, *, app: str | None = None, workers: int = 0, port: int | None = None,
              extra: Sequence[str] = (), **kwargs: object) -> "IchidoProcess":
        """``ichido serve`` on ``port`` (a free one by default); not started yet."""
        port = port or free_port()
        args = ["serve", "--port", str(port), "--workers", str(workers), *extra]
        if app:
            args += ["--app", app]
        return cls(args, port=port, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def worker(cls, *, app: str | None = None, concurrency: int = 1,
               **kwargs: object) -> "IchidoProcess":
        """``ichido worker`` with ``concurrency`` threads; not started yet."""
        args = ["worker", "--concurrency", str(concurrency)] + (["--app", app] if app else [])
        return cls(args, **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def launch(self) -> "IchidoProcess":
        """Start the process without waiting for it to be ready."""
        assert not self.running(), f"{self.name} is already running"
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         start_new_session=self.new_session)
        self.starts += 1
        return self

    def start(self, timeout: float = 60.0) -> "IchidoProcess":
        """Start and wait until ready; ``RuntimeError`` with its output if it exits first."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.running():
                raise RuntimeError(f"{self.name} exited ({self.returncode()}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready in {timeout:g} s:\n"
                                   f"{self.output()}")
            time.sleep(0.05)

    def ready(self) -> bool:
        if not self.running():
            return False
        if self.port is not None:
            try:
                return httpx.get(f"{self.url}{self.ready_path}", timeout=2).status_code < 500
            except httpx.HTTPError:
                return False
        return self.ready_text in self._output_since_start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """SIGKILL, what ``kill -9`` does: no shutdown hook runs, no lease is given back."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, the graceful path; SIGKILL if it does not end within ``timeout``."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def output(self) -> str:
        """Everything it printed so far, over all its starts."""
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def _output_since_start(self) -> bytes:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._offset)
                return log.read()
        except OSError:
            return b""

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> "IchidoProcess":
        return self if self.running() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- PostgreSQL: a schema per test -----------------------------------------------------------------

def with_search_path(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema``."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def postgres_up(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def postgres_schema(base_url: str, *, prefix: str = "ichido_t") -> Iterator[str]:
    """A new, empty schema on ``base_url``; yields the URL that uses it; dropped afterwards.

    Each step opens its own short connection, so a server restarted inside (a fault test)
    breaks nothing: the drop waits, bounded, for the server to answer again.
    """
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(base_url, schema)
    finally:
        wait_until(lambda: postgres_up(base_url), timeout=60, interval=0.2,
                   message=f"PostgreSQL at {base_url} to drop schema {schema}")
        with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- private servers, for the faults that must not reach the shared ones -------------------------

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
