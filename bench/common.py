"""What every benchmark shares: options, the signed event stream, servers, wrk, rounds, output.

Nothing here times anything on its own; each benchmark decides what to measure and always
measures a baseline in the same run, because these machines are shared and only ratios hold.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import orjson

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SECRET = "whsec_bench_0123456789abcdef0123456789abcdef"
POSTGRES_URL = os.environ.get("ICHIDO_BENCH_POSTGRES_URL",
                              os.environ.get("ICHIDO_TEST_POSTGRES_URL",
                                             "postgresql://postgres@127.0.0.1:5432/test"))
REDIS_URL = os.environ.get("ICHIDO_BENCH_REDIS_URL",
                           os.environ.get("ICHIDO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "replay.lua"
BACKENDS = ("sqlite", "postgres+redis")
EVENT_TYPES = ("payment_intent.succeeded", "charge.succeeded", "payment_intent.created",
               "invoice.paid", "customer.updated")


# -- options and output ------------------------------------------------------------------------

def parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m bench {name}", description=description)
    p.add_argument("--quick", action="store_true", help="a short run (under 60 s)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def machine() -> dict[str, Any]:
    """What the numbers were measured on (the load average says how shared it was)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, text=True,
                                    capture_output=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "commit": commit + ("+dirty" if dirty else ""),
            "note": "shared 2-core machine: compare ratios, not absolute numbers"}


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain, aligned text table (numbers right-aligned)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [title, line, "-" * len(line)]
    for row, raw in zip(cells, rows):
        out.append("  ".join(c.rjust(w) if isinstance(v, (int, float)) else c.ljust(w)
                             for c, w, v in zip(row, widths, raw)))
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        sys.stdout.flush()
        print(json.dumps(result, sort_keys=False), flush=True)


def say(*parts: Any) -> None:
    """Progress goes to stderr, so stdout holds only the tables and the JSON line."""
    print(*parts, file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


# -- the event stream ----------------------------------------------------------------------------

_PLACEHOLDERS = {"id": "@@ID@@", "obj": "@@OBJ@@", "type": "@@TYPE@@", "created": 1_111_111_111,
                 "pad": "@@PAD@@"}


def _template() -> list[bytes]:
    """A konbini/card PaymentIntent event as Stripe sends it (about 2.3 KB before padding),
    cut into pieces around the fields that vary, so building a body costs one join."""
    p = _PLACEHOLDERS
    obj = {
        "id": p["obj"], "object": "payment_intent", "amount": 4980, "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": 4980, "application": None,
        "application_fee_amount": None, "automatic_payment_methods": None, "canceled_at": None,
        "cancellation_reason": None, "capture_method": "automatic",
        "client_secret": p["obj"] + "_secret_Qm9vQmFyQmF6UXV4Q29yZ2VHcmF1bHQ",
        "confirmation_method": "automatic", "created": p["created"], "currency": "jpy",
        "customer": "cus_PxQ8dLm3ZrV2kA", "description": "Live commerce: limited tote bag (navy)",
        "excluded_payment_method_types": None, "last_payment_error": None,
        "latest_charge": "ch_3PxQ8dLm3ZrV2kA0a1b2c3d4", "livemode": False,
        "metadata": {"order_id": "ord_20261126_000123", "shop": "live-commerce",
                     "stream_id": "live_7f3a9c", "sku": "tote-navy-2026", "note": p["pad"]},
        "next_action": None, "on_behalf_of": None,
        "payment_method": "pm_1PxQ8dLm3ZrV2kA0konbini0",
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {"installments": None, "mandate_options": None, "network": None,
                     "request_three_d_secure": "automatic"},
            "konbini": {"confirmation_number": "09012345678", "expires_after_days": 3,
                        "expires_at": None, "product_description": "Limited tote bag"}},
        "payment_method_types": ["card", "konbini"],
        "processing": None, "receipt_email": "buyer@example.jp", "review": None,
        "setup_future_usage": None,
        "shipping": {"address": {"city": "Shibuya-ku", "country": "JP",
                                 "line1": "1-2-3 Jingumae", "line2": "Harajuku Bldg 4F",
                                 "postal_code": "150-0001", "state": "Tokyo"},
                     "carrier": "Yamato", "name": "Hanako Yamada", "phone": "+81312345678",
                     "tracking_number": None},
        "source": None, "statement_descriptor": "ICHIDO SHOP",
        "statement_descriptor_suffix": None, "status": "succeeded",
        "transfer_data": None, "transfer_group": "group_ord_20261126_000123",
        "charges_summary": {"konbini": {"store": {"chain": "familymart"},
                                        "payment_codes": {"familymart": "123456789012",
                                                          "lawson": "LW-1234-5678",
                                                          "ministop": "MS-1234-5678",
                                                          "seicomart": "SC-1234-5678"},
                                        "hosted_voucher_url": "https://payments.stripe.com/"
                                        "konbini/voucher/test_YWNjdF8xUHhROGRMbTNaclYya0Es"}},
    }
    doc = {"id": p["id"], "object": "event", "api_version": "2026-10-28.endive",
           "created": p["created"], "data": {"object": obj, "previous_attributes": {
               "status": "requires_action", "amount_received": 0}},
           "livemode": False, "pending_webhooks": 2,
           "request": {"id": None, "idempotency_key": "0c8d2b4e-1a7f-4b53-9a44-6f1d2e3c4b5a"},
           "type": p["type"]}
    raw = orjson.dumps(doc)
    raw = raw.replace(str(p["created"]).encode(), b"@@CREATED@@")
    pieces: list[bytes] = []
    rest = raw
    while True:
        at = [(rest.find(m), m) for m in (b"@@ID@@", b"@@OBJ@@", b"@@TYPE@@", b"@@CREATED@@",
                                          b"@@PAD@@")]
        at = [(i, m) for i, m in at if i >= 0]
        if not at:
            pieces.append(rest)
            return pieces
        i, marker = min(at)
        pieces.append(rest[:i])
        pieces.append(marker)
        rest = rest[i + len(marker):]


_TEMPLATE = _template()


def event_body(event_id: str, object_id: str, event_type: str, created: int, pad: int) -> bytes:
    values = {b"@@ID@@": event_id.encode(), b"@@OBJ@@": object_id.encode(),
              b"@@TYPE@@": event_type.encode(), b"@@CREATED@@": str(created).encode(),
              b"@@PAD@@": b"x" * pad}
    return b"".join(values.get(piece, piece) for piece in _TEMPLATE)


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass
class Stream:
    """Signed deliveries in order; ``dup`` marks a redelivery of an earlier event."""

    bodies: list[bytes] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    dup: list[bool] = field(default_factory=list)

    @property
    def unique(self) -> int:
        return len(self) - sum(self.dup)

    def __len__(self) -> int:
        return len(self.bodies)


def make_stream(count: int, *, duplicate_rate: float = 0.3, seed: int | None = None,
                recent: int = 2000, events_per_object: int = 3) -> Stream:
    """``count`` deliveries, ``duplicate_rate`` of them copies of one of the last ``recent``
    events (Stripe's duplicates usually follow soon). Bodies are 2.3–3.0 KB; each PaymentIntent
    has a few events, as in life; signatures are fresh (now), so use the stream within 300 s."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:10]
    now = int(time.time())
    stream = Stream()
    originals: list[int] = []
    n_events = 0
    for _ in range(count):
        if originals and rng.random() < duplicate_rate:
            src = originals[-1 - rng.randrange(min(recent, len(originals)))]
            stream.bodies.append(stream.bodies[src])
            stream.headers.append(stream.headers[src])
            stream.ids.append(stream.ids[src])
            stream.dup.append(True)
            continue
        event_id = f"evt_{run}{n_events:014d}"
        object_id = f"pi_{run}{n_events // events_per_object:014d}"
        body = event_body(event_id, object_id, EVENT_TYPES[n_events % len(EVENT_TYPES)], now,
                          rng.randrange(0, 700))
        n_events += 1
        originals.append(len(stream.bodies))
        stream.bodies.append(body)
        stream.headers.append(sign(body, now))
        stream.ids.append(event_id)
        stream.dup.append(False)
    return stream


def write_requests(stream: Stream, path: str | Path, target: str = "/webhooks/stripe") -> Path:
    """Raw HTTP/1.1 requests for wrk's Lua script: ``<length>\\n<request bytes>`` each."""
    path = Path(path)
    with open(path, "wb") as out:
        for body, header in zip(stream.bodies, stream.headers):
            request = (f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json; charset=utf-8\r\n"
                       f"Stripe-Signature: {header}\r\nContent-Length: {len(body)}\r\n"
                       "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\r\n"
                       ).encode() + body
            out.write(b"%d\n" % len(request))
            out.write(request)
    return path


# -- wrk -------------------------------------------------------------------------------------------

def require_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        print("wrk (the HTTP load generator) is not installed.\n"
              "Install it with: apt-get install -y wrk   (Debian/Ubuntu package `wrk`)",
              file=sys.stderr)
        sys.exit(2)
    return found


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect/read/write/timeout errors and non-2xx/3xx answers
    non_2xx: int
    wrapped: int  # times the request file was replayed from the start
    consumed: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_wrk(port: int, requests_file: Path, seconds: float, *, connections: int = 64,
            threads: int = 1, timeout_s: int = 10) -> WrkResult:
    cmd = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           f"--timeout={timeout_s}s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}/"]
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file), "BENCH_THREADS": str(threads)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=seconds + 120)
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line.split(" ", 1)[1])
    seconds_run = data["duration_us"] / 1e6
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts",
                                   "status_errors"))
    return WrkResult(requests=data["requests"], seconds=seconds_run,
                     rps=data["requests"] / seconds_run if seconds_run else 0.0,
                     p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
                     p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
                     errors=errors, non_2xx=data["status_errors"], wrapped=data["wrapped"],
                     consumed=data["consumed"])


# -- processes -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Process:
    """A child process on loopback, its output kept in a temp file, stopped by its own pid."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str] | None = None,
                 port: int | None = None, ready_path: str = "/", ready_timeout: float = 30.0,
                 cwd: str | None = None) -> None:
        self.name = name
        self.port = port
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log",
                                                delete=False)
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc = subprocess.Popen(list(args), env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=cwd or tempfile.gettempdir())
        if port is not None:
            self._wait_http(ready_path, ready_timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_http(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", path)
                status = conn.getresponse().status
                conn.close()
                if status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on port {self.port}:\n{self.output()}")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def output(self) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


def ichido_cli(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([PY, "-m", "ichido", *args], env={**os.environ, "PYTHONPATH": str(ROOT),
                                                             **env},
                          capture_output=True, text=True, timeout=120, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(f"ichido {' '.join(args)} failed: {done.stdout}{done.stderr}")


def serve_ichido(store: "Store", *, workers: int = 0, app: str | None = None,
                 extra_env: dict[str, str] | None = None) -> Process:
    """``ichido serve`` exactly as a user runs it (uvicorn, httptools, uvloop, one process)."""
    port = free_port()
    args = [PY, "-m", "ichido", "serve", "--port", str(port), "--workers", str(workers)]
    if app:
        args += ["--app", app]
    return Process("ichido", args, env={**store.env, **(extra_env or {})}, port=port,
                   ready_path="/healthz")


def serve_module(name: str, *extra: str, env: dict[str, str] | None = None) -> Process:
    """``python -m bench NAME --port P`` for the comparison servers (bare, baseline, peers):
    they call :func:`serve_asgi`, the same uvicorn settings as ``ichido serve``."""
    port = free_port()
    return Process(name, [PY, "-m", "bench", name, "--port", str(port), *extra], env=env,
                   port=port)


def serve_asgi(app: Any, port: int) -> None:
    """uvicorn exactly as ``ichido serve`` configures it (see src/ichido/cli.py)."""
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                http="httptools", loop="uvloop")


async def answer_lifespan(receive: Any, send: Any) -> None:
    """The ASGI lifespan protocol for the comparison apps, which have nothing to start."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def server_port_arg(name: str, argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog=f"python -m bench {name}",
                                description=f"serve the {name} comparison app (not a benchmark)")
    p.add_argument("--port", type=int, required=True)
    return p.parse_args(argv).port


# -- stores ---------------------------------------------------------------------------------------

@dataclass
class Store:
    """One fresh store for one server: its environment and how to read it from here."""

    backend: str
    database_url: str
    redis_url: str | None
    cleanup: list[Any] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {"ICHIDO_DATABASE_URL": self.database_url, "STRIPE_WEBHOOK_SECRET": SECRET,
               "ICHIDO_REDIS_URL": self.redis_url or ""}
        return env

    def count(self, sql: str) -> int:
        if self.database_url.startswith("sqlite"):
            import sqlite3

            conn = sqlite3.connect(self.database_url.split("///", 1)[1], timeout=30)
            try:
                return int(conn.execute(sql).fetchone()[0])
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])


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
    import psycopg

    schema = f"bench_{tag.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.Error as exc:
        raise SystemExit(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}") from None
    sep = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    store = Store(backend, url, REDIS_URL if backend == "postgres+redis" else None)
    try:
        yield store
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
            if store.redis_url:  # ichido's seen keys live under its store id
                with contextlib.suppress(psycopg.Error):
                    row = conn.execute(f"SELECT id FROM {schema}.ichido_store").fetchone()
                    if row:
                        delete_redis_prefix(store.redis_url, f"ichido:seen:{row[0]}:*")
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for fn in store.cleanup:
            with contextlib.suppress(Exception):
                fn()


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


def guarded(backend: str, run: Any, *args: Any) -> dict[str, Any]:
    """Run one backend's part; a failure (say, another suite stopped PostgreSQL meanwhile) is
    reported as that backend's ``error`` and the other backends still run."""
    try:
        return run(backend, *args)
    except Exception as exc:  # noqa: BLE001 - reported, and the exit status says so
        say(f"{backend}: failed: {type(exc).__name__}: {exc}")
        return {"backend": backend, "error": f"{type(exc).__name__}: {exc}"}


def split_failed(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The results that have numbers, and an exit status (1 when a backend failed)."""
    for r in results:
        if "error" in r:
            print(f"{r['backend']}: FAILED: {r['error']}")
    return [r for r in results if "error" not in r], int(any("error" in r for r in results))


def not_a_benchmark(name: str) -> int:
    print(f"bench/{name}.py holds helpers, not a benchmark; run: python -m bench ingest|e2e|"
          "growth|peers|all", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    return not_a_benchmark("common")
