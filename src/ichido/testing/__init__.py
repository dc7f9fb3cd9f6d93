"""Real processes and real servers for testing ichido, and apps built on it.

Written once for tests/ and bench/ alike: a free port; ``ichido serve`` and ``ichido worker`` as
subprocesses that can be ``kill -9``-ed and started again on the same port; a PostgreSQL schema
per test. Private PostgreSQL and Redis servers, which a fault test may restart or flush without
disturbing anyone else who shares the machine's servers, are in ``ichido.testing.servers``.

Deadlines here are for hung runs only: nothing in this module asserts how fast anything is.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
import uuid
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import httpx

# The public API (docs/api.md): what an application may import from here.
__all__ = ["IchidoProcess", "free_port", "postgres_schema", "postgres_up", "wait_until",
           "with_search_path"]

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
              extra: Sequence[str] = (), **kwargs: Any) -> "IchidoProcess":
        """``ichido serve`` on ``port`` (a free one by default); not started yet."""
        port = port or free_port()
        args = ["serve", "--port", str(port), "--workers", str(workers), *extra]
        if app:
            args += ["--app", app]
        return cls(args, port=port, **kwargs)

    @classmethod
    def worker(cls, *, app: str | None = None, concurrency: int = 1,
               **kwargs: Any) -> "IchidoProcess":
        """``ichido worker`` with ``concurrency`` threads; not started yet."""
        args = ["worker", "--concurrency", str(concurrency)] + (["--app", app] if app else [])
        return cls(args, **kwargs)

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
        """SIGTERM, the graceful path; SIGKILL if it does not end within ``timeout``, with a
        warning: a process that ignores SIGTERM is a bug to see (a hung shutdown once hid here
        for a whole release), not a detail to paper over."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                warnings.warn(f"{self.name} did not stop within {timeout:g} s of"
                              " SIGTERM: killed", RuntimeWarning, stacklevel=2)
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
