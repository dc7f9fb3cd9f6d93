"""The reliability run: N orders through the local Stripe and the shop on PostgreSQL + Redis,
with everything that goes wrong in production made to go wrong on purpose, then checked.

    python -m bench torture [--orders N] [--json] [--database-url URL] [--redis-url URL] ...

What runs: the emulator (a process of its own) sends every event to every receiver (so each
event reaches two receivers at the same instant: concurrent duplicates, I8), with 30% extra
duplicate copies and each object's events reordered; ``ichido serve`` receivers (the shop's API
and the webhook endpoint) and ``ichido worker`` processes (handlers and the outbox) on one
PostgreSQL schema (created, then dropped) and one Redis (its keys removed afterwards). Buyers
place card and konbini orders, pay or let vouchers expire, ask for refunds (konbini refunds
wait for bank details), each step retried with its Idempotency-Key when an answer is lost, as a
client would. Buyers pause while the emulator has many deliveries under way (backpressure).

What goes wrong: ``kill -9`` of random receivers and workers (restarted at once), a Redis
``FLUSHDB``, a PostgreSQL restart (``--no-kills``, ``--no-redis-flush``, ``--no-pg-restart``).

What is checked, once everything has settled:
- lost: events the emulator created that are not in the inbox as processed (or ignored);
- double effects: more than one PaymentIntent per order or Stripe refund per refund request,
  mail or fulfilment the final state does not justify, stock taken or given back twice;
- mismatched states: each order's status, entitlement, shipment and refunds against an in-order
  replay (every event in ``created`` order through the domain's handlers into a fresh SQLite);
- and: missing effects (an expected mail, refund or fulfilment that never happened), orders
  not ending as their story says, dead letters.
The last line with ``--json`` is one JSON object of the figures. Exit 0 only when all are zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import orjson
import psycopg
import redis

from bench.common import delete_redis_prefix

ROOT = Path(__file__).resolve().parent.parent
SHOP_APP = "ichido.shop.app:create_app"
API_KEY = "sk_test_ichido_torture"
STOCK = 100_000_000
PRODUCTS = {  # id: (kind, price)
    "live-2026-12": ("video_ticket", 1500),
    "tour-tshirt": ("physical", 3500),
    "live-acrylic-stand": ("live_item", 2000),
}
SHIPPED = ("physical", "live_item")
REACHED_PAID = ("paid", "partially_refunded", "refunded")
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
PG_STOP = "pg_ctlcluster --skip-systemctl-redirect 15 main stop"
PG_START = "pg_ctlcluster --skip-systemctl-redirect 15 main start"


def log(message: str) -> None:
    print(f"[torture {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


# -- the plan: what each buyer does ------------------------------------------------------------

@dataclass
class Plan:
    index: int
    product: str
    method: str  # card | konbini
    outcome: str  # paid | declined | expired
    refunds: tuple[int | None, ...] = ()  # one amount per refund request; None: the rest
    order_id: str | None = None
    payment_intent: str | None = None
    refund_requests: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def amount(self) -> int:
        return PRODUCTS[self.product][1]

    @property
    def kind(self) -> str:
        return PRODUCTS[self.product][0]

    def expected_status(self) -> str:
        if self.outcome == "declined":
            return "failed"
        if self.outcome == "expired":
            return "expired"
        if not self.refunds:
            return "paid"
        return "refunded" if None in self.refunds else "partially_refunded"


def make_plans(count: int, rng: random.Random) -> list[Plan]:
    plans = []
    for index in range(count):
        product = rng.choice(list(PRODUCTS))
        roll = rng.random()
        if roll < 0.34:
            method, outcome = "card", "paid"
        elif roll < 0.42:
            method, outcome = "card", "declined"
        elif roll < 0.84:
            method, outcome = "konbini", "paid"
        else:
            method, outcome = "konbini", "expired"
        refunds: tuple[int | None, ...] = ()
        if outcome == "paid" and rng.random() < 0.3:
            half = PRODUCTS[product][1] // 2
            if method == "konbini":
                refunds = (None,)
            else:
                refunds = rng.choice([(None,), (half,), (half, None)])
        plans.append(Plan(index, product, method, outcome, refunds))
    return plans


# -- processes under test ----------------------------------------------------------------------

class Service:
    """One ``ichido serve`` or ``ichido worker`` process, killed and restarted at will."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path,
                 port: int | None = None) -> None:
        self.name, self.args, self.env, self.port = name, args, env, port
        self.log_path = logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        if self.port is not None:
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        with open(self.log_path, "rb") as out:
            out.seek(self._log_offset)
            return b"worker thread" in out.read()

    def start_and_wait(self, timeout: float = 90.0) -> None:
        """Start (again, after a crash); a start that fails (PostgreSQL restarting) is retried."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                self.start()
            while self.proc is not None and self.proc.poll() is None:
                if self.ready():
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")
                time.sleep(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} keeps exiting; see {self.log_path}")
            time.sleep(0.5)

    def kill(self) -> None:
        """``kill -9``: no shutdown hook runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class EmulatorProcess:
    """The local Stripe in a process of its own (it is the busiest piece: every delivery is an
    HTTP request it makes), with a few read-outs for this run under ``/_torture/``."""

    def __init__(self, args: argparse.Namespace, port: int, webhook_urls: list[str],
                 secret: str, logdir: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "bench", "torture", "--emulator-child",
                   "--port", str(port), "--secret", secret,
                   "--duplicate-rate", str(args.duplicate_rate),
                   "--reorder-window", str(args.reorder_window), "--seed", str(args.seed),
                   "--sender-concurrency", str(args.sender_concurrency)]
        for url in webhook_urls:
            command += ["--webhook-url", url]
        self.log = open(logdir / "emulator.log", "ab")
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.client = httpx.Client(base_url=self.url, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.status()
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the emulator did not start; see {self.log.name}")
                time.sleep(0.1)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Every read-out is safe to repeat: a reset keep-alive connection is tried again."""
        for attempt in range(20):
            try:
                response = self.client.request(method, path, **kwargs)
                response.raise_for_status()
                return response.json()
            except httpx.HTTPError:
                if attempt == 19 or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/_torture/status")

    def fire_due(self) -> dict[str, Any]:
        return self.request("POST", "/_torture/fire")

    def refund(self, request_id: str) -> tuple[str, str] | None:
        found = self.request("GET", "/_torture/refund", params={"request": request_id})
        return (found["id"], found["status"]) if found else None

    def dump(self, path: Path) -> dict[str, Any]:
        self.request("POST", "/_torture/dump", params={"path": str(path)})
        return orjson.loads(path.read_bytes())

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def serve_emulator(argv: list[str]) -> int:
    """``--emulator-child``: run the emulator with the run's read-outs (see EmulatorProcess)."""
    import uvicorn

    from ichido.emulator import Emulator
    from ichido.emulator.app import build_app

    parser = argparse.ArgumentParser()
    parser.add_argument("--emulator-child", action="store_true")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", action="append", default=[])
    parser.add_argument("--secret", required=True)
    parser.add_argument("--duplicate-rate", type=float, default=0.3)
    parser.add_argument("--reorder-window", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--sender-concurrency", type=int, default=48)
    args = parser.parse_args(argv)
    emu = Emulator(webhook_urls=args.webhook_url, webhook_secrets=[args.secret], api_key=API_KEY,
                   duplicate_rate=args.duplicate_rate, reorder_window=args.reorder_window,
                   time_scale=0.001, seed=args.seed,
                   webhook_concurrency=max(1, args.sender_concurrency))
    emu.store.public_url = f"http://127.0.0.1:{args.port}"
    inner = build_app(emu)
    store, sender = emu.store, emu.sender

    def answer(path: str, query: dict[str, list[str]]) -> Any:
        if path == "/_torture/status":
            return {"in_flight": len(getattr(sender, "_tasks", ())), "busy": sender.busy(),
                    "events": len(store.objects["event"])}
        if path == "/_torture/fire":
            with store.lock:
                store.fire_due()
            return {"busy": sender.busy()}
        if path == "/_torture/refund":
            wanted = query["request"][0]
            with store.lock:
                for refund in store.objects["refund"].values():
                    if refund["metadata"].get("refund_request") == wanted:
                        return {"id": refund["id"], "status": refund["status"]}
            return None
        if path == "/_torture/dump":
            with store.lock:
                doc = {"events": list(reversed(store.live_events())),
                       "intents": [[pi["id"], pi["metadata"].get("order_id")]
                                   for pi in store.objects["payment_intent"].values()],
                       "refunds": [[r["id"], r["metadata"].get("refund_request"), r["status"]]
                                   for r in store.objects["refund"].values()]}
            doc["stats"] = emu.stats()
            Path(query["path"][0]).write_bytes(orjson.dumps(doc))
            return {"ok": True}
        return None

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/_torture/"):
            from urllib.parse import parse_qs

            query = parse_qs(scope["query_string"].decode())
            body = orjson.dumps(await asyncio.to_thread(answer, scope["path"], query))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await inner(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on",
                access_log=False)
    return 0


# -- the run -----------------------------------------------------------------------------------

@dataclass
class Figures:
    kills: Counter = field(default_factory=Counter)
    redis_flushes: int = 0
    pg_restarts: int = 0
    pg_down_seconds: float = 0.0
    client_retries: int = 0


class Torture:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.plans = make_plans(args.orders, self.rng)
        self.figures = Figures()
        self.tmp = Path(tempfile.mkdtemp(prefix="ichido-torture-"))
        self.schema = f"torture_{uuid.uuid4().hex[:12]}"
        self.db_url = with_search_path(args.database_url, self.schema)
        self.secret = f"whsec_torture_{uuid.uuid4().hex}"
        self.receivers: list[Service] = []
        self.workers: list[Service] = []
        self.emulator: EmulatorProcess | None = None
        self.emulator_state: dict[str, Any] = {"in_flight": 0, "busy": True, "events": 0}
        self.monitor: threading.Thread | None = None
        self.fault_lock = threading.Lock()
        self.done_stories = 0
        self.started_stories = 0
        self.planned: list[tuple[int, str, threading.Event]] = []
        self.done_lock = threading.Lock()
        self.placing = threading.Event()
        self.aborting = threading.Event()
        self.chaos_error: BaseException | None = None
        self.local = threading.local()
        self.schema_created = False
        self.store_id: str | None = None

    # -- set-up and tear-down --------------------------------------------------------------

    def setup(self) -> None:
        with psycopg.connect(self.args.database_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        self.schema_created = True
        catalog = self.tmp / "catalog.toml"
        catalog.write_text("".join(
            f'[[products]]\nid = "{pid}"\nname = "{pid}"\nprice = {price}\nkind = "{kind}"\n'
            + (f"stock = {STOCK}\n" if kind == "physical" else "")
            + 'methods = ["card", "konbini"]\n\n' for pid, (kind, price) in PRODUCTS.items()))
        (self.tmp / "mail").mkdir()
        emulator_port = free_port()
        ports = [free_port() for _ in range(self.args.receivers)]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ICHIDO_", "STRIPE_"))}
        env.update({
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            "ICHIDO_DATABASE_URL": self.db_url, "ICHIDO_REDIS_URL": self.args.redis_url,
            "STRIPE_WEBHOOK_SECRET": self.secret, "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": f"http://127.0.0.1:{emulator_port}",
            "ICHIDO_CATALOG": str(catalog), "ICHIDO_MAIL_DIR": str(self.tmp / "mail"),
            "ICHIDO_LEASE": self.args.lease, "ICHIDO_RETRY_BASE": "0.2s",
            "ICHIDO_RETRY_CAP": "2s", "ICHIDO_POLL_INTERVAL": "0.05s",
            "ICHIDO_DB_POOL_SIZE": "4"})
        migrated = subprocess.run([sys.executable, "-m", "ichido", "migrate", "--app", SHOP_APP],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        if migrated.returncode:
            raise RuntimeError(f"ichido migrate failed: {migrated.stdout}{migrated.stderr}")
        logs = self.tmp / "logs"
        logs.mkdir()
        self.emulator = EmulatorProcess(
            self.args, emulator_port,
            [f"http://127.0.0.1:{port}/webhooks/stripe" for port in ports], self.secret, logs)
        self.monitor = threading.Thread(target=self.watch_emulator, daemon=True)
        self.monitor.start()
        python = [sys.executable, "-m", "ichido"]
        self.receivers = [Service(f"receiver-{n}", [*python, "serve", "--app", SHOP_APP,
                                                    "--workers", "0", "--port", str(port)],
                                  env, logs, port) for n, port in enumerate(ports)]
        self.workers = [Service(f"worker-{n}", [*python, "worker", "--app", SHOP_APP,
                                                "--concurrency", str(self.args.worker_threads)],
                                env, logs) for n in range(self.args.workers)]
        services = [*self.receivers, *self.workers]
        for service in services:
            service.start()
        for service in services:
            service.start_and_wait()

    def teardown(self) -> None:
        self.placing.clear()  # the chaos thread stops; wait for a fault under way to finish
        locked = self.fault_lock.acquire(timeout=120)
        for service in (*self.receivers, *self.workers):
            with contextlib.suppress(Exception):
                service.stop()
        if self.emulator is not None:
            self.aborting.set()  # the emulator watch ends before the emulator does
            if self.monitor is not None:
                self.monitor.join(10)
            with contextlib.suppress(Exception):
                self.emulator.stop()
        with contextlib.suppress(Exception):
            self.ensure_postgres()
        if self.store_id is None and self.schema_created:
            with contextlib.suppress(psycopg.Error, IndexError):
                self.store_id = self.query("SELECT id FROM ichido_store")[0][0]
        if self.store_id:  # the seen tier's keys outlive the schema (73 h TTL): remove them
            with contextlib.suppress(redis.RedisError):
                delete_redis_prefix(self.args.redis_url, f"ichido:seen:{self.store_id}:*")
        if self.schema_created and not self.args.keep:
            with contextlib.suppress(psycopg.Error):
                with psycopg.connect(self.args.database_url, autocommit=True,
                                     connect_timeout=10) as conn:
                    conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        if self.args.keep:
            log(f"kept: schema {self.schema}, files in {self.tmp}")
        else:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
        if locked:
            self.fault_lock.release()

    # -- the buyers --------------------------------------------------------------------------

    def http(self) -> httpx.Client:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(timeout=30)
        return client

    def call(self, method: str, path: str, *, final: tuple[int, ...], base: str | None = None,
             deadline: float | None = None, **kwargs: Any) -> httpx.Response:
        """One request, retried as a careful client retries: on no answer or a 5xx, against any
        receiver, with the same Idempotency-Key, until an answer in ``final`` (bounded)."""
        deadline = deadline or self.args.story_timeout
        until = time.monotonic() + deadline
        pause = 0.05
        last = "no answer"
        while True:
            url = base or self.rng_choice(self.receivers).url
            try:
                response = self.http().request(method, f"{url}{path}", **kwargs)
                if response.status_code in final:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
                if response.status_code < 500 and response.status_code not in (409,):
                    raise RuntimeError(f"{method} {path}: {last}")
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                self.local.client = None  # a connection to a killed process: start afresh
            if time.monotonic() > until or self.aborting.is_set():
                raise RuntimeError(f"{method} {path}: no final answer in {deadline:g} s"
                                   f" (last: {last})")
            with self.done_lock:
                self.figures.client_retries += 1
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def rng_choice(self, items: list[Service]) -> Service:
        return items[random.randrange(len(items))]

    def emulator_control(self, path: str, **form: str) -> httpx.Response:
        assert self.emulator is not None
        return self.call("POST", path, base=self.emulator.url, final=(200, 400),
                         data=form, headers={"Authorization": f"Bearer {API_KEY}"})

    def order_state(self, order_id: str) -> dict[str, Any]:
        return self.call("GET", f"/orders/{order_id}", final=(200,)).json()

    def wait(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.args.story_timeout
        pause = 0.05
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline or self.aborting.is_set():
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    def stripe_refund(self, request_id: str) -> tuple[str, str] | None:
        assert self.emulator is not None
        return self.emulator.refund(request_id)

    def watch_emulator(self) -> None:
        """One thread reads the emulator's state for everyone (buyers only look at it)."""
        while not self.aborting.is_set() and self.emulator is not None:
            with contextlib.suppress(httpx.HTTPError, RuntimeError):  # RuntimeError: closed
                self.emulator_state = self.emulator.status()
            time.sleep(0.05)

    def in_flight(self) -> int:
        """Deliveries the emulator has under way (retries waiting included)."""
        return int(self.emulator_state["in_flight"])

    def backpressure(self) -> None:
        """A buyer waits while Stripe has many deliveries under way: the emulator runs every
        delivery at once on one HTTP client, and a backlog there only times itself out."""
        while self.in_flight() > self.args.max_in_flight and not self.aborting.is_set():
            time.sleep(0.02)

    def story(self, plan: Plan) -> None:
        if self.aborting.is_set():
            return
        try:
            self.begin_story()
            self.backpressure()
            self._story(plan)
        except Exception as exc:  # counted, never silent
            plan.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self.done_lock:
                self.done_stories += 1

    def _story(self, plan: Plan) -> None:
        key = f"torture-{self.schema}-{plan.index}"
        # Konbini: "fill_never" makes the emulator leave the voucher to us (pay or expire it).
        never = "fill_never" if plan.method == "konbini" else ""
        body: dict[str, Any] = {"product": plan.product, "payment_method": plan.method,
                                "email": f"t{plan.index}{never}@example.com"}
        if plan.method == "card":
            body["payment_method_id"] = ("pm_card_chargeDeclined" if plan.outcome == "declined"
                                         else "pm_card_visa")
        placed = self.call("POST", "/orders", json=body, final=(201, 402),
                           headers={"Idempotency-Key": key}).json()
        plan.order_id, plan.payment_intent = placed["id"], placed["payment_intent"]
        if plan.method == "konbini":
            if not plan.payment_intent:
                raise RuntimeError(f"konbini order {plan.order_id} has no PaymentIntent")
            action = "pay" if plan.outcome == "paid" else "expire"
            form = {"store": self.rng.choice(["familymart", "lawson", "ministop", "seicomart"])} \
                if action == "pay" else {}
            # A 400 here is "no open voucher": an earlier attempt did it and lost its answer.
            self.emulator_control(f"/_emulator/payment_intents/{plan.payment_intent}/{action}",
                                  **form)
        for number, amount in enumerate(plan.refunds):  # None: "the rest", no amount given
            self.refund(plan, key, number, amount)

    def refund(self, plan: Plan, key: str, number: int, amount: int | None) -> None:
        order_id = plan.order_id
        assert order_id is not None
        self.wait(f"order {order_id} to be paid", lambda: self.order_state(order_id)["status"]
                  in ("paid", "partially_refunded"))
        answer = self.call("POST", f"/orders/{order_id}/refund", final=(202,),
                           json={} if amount is None else {"amount": amount},
                           headers={"Idempotency-Key": f"{key}-refund-{number}"}).json()
        request_id = answer["refund_request"]["id"]
        plan.refund_requests.append(request_id)
        if plan.method == "konbini":  # the buyer gets the mail and sends bank details
            refund_id, _ = self.wait(f"the Stripe refund of {request_id}",
                                     lambda: self.stripe_refund(request_id))
            self.emulator_control(f"/_emulator/refunds/{refund_id}/bank_details",
                                  account_number="0001234")

    # -- what goes wrong ---------------------------------------------------------------------

    def plan_faults(self) -> None:
        """The faults every run has, each due when a share of the buyers has started: the
        buyer who reaches that share waits until the fault has begun, so every fault lands
        while other buyers are mid-story, however small the run. Random kills come on top."""
        args, share = self.args, []
        if not args.no_kills:
            share += [(0.08, "kill-receiver"), (0.2, "kill-worker")]
        if not args.no_redis_flush:
            share.append((0.35, "redis-flush"))
        if not args.no_pg_restart:
            share.append((0.5, "pg-restart"))
        if not args.no_kills:
            share += [(0.65, "kill-worker"), (0.8, "kill-receiver")]
        self.planned = [(max(1, int(fraction * len(self.plans))), action, threading.Event())
                        for fraction, action in sorted(share)]

    def begin_story(self) -> None:
        with self.done_lock:
            self.started_stories += 1
            number = self.started_stories
        for threshold, _, begun in self.planned:
            if number >= threshold:
                begun.wait(300)

    def chaos(self) -> None:
        try:
            self._chaos()
        except BaseException as exc:
            self.chaos_error = exc
            log(f"chaos failed: {exc!r}")
        finally:
            for _, _, begun in self.planned:  # never leave a buyer waiting
                begun.set()

    def _chaos(self) -> None:
        pending = list(self.planned)
        last_kill = time.monotonic()
        while self.placing.is_set():
            if pending and self.started_stories >= pending[0][0]:
                _, action, begun = pending.pop(0)
                begun.set()
                self.fault(action)
                if action.startswith("kill"):
                    last_kill = time.monotonic()
            elif not self.args.no_kills and time.monotonic() - last_kill > self.args.kill_every:
                self.fault(self.rng.choice(["kill-receiver", "kill-worker"]))
                last_kill = time.monotonic()
            time.sleep(0.02)

    def fault(self, action: str) -> None:
        with self.fault_lock:
            if action.startswith("kill"):
                group = self.receivers if action == "kill-receiver" else self.workers
                victim = self.rng.choice(group)
                victim.kill()
                self.figures.kills[action.removeprefix("kill-")] += 1
                log(f"kill -9 {victim.name} (orders done {self.done_stories})")
                victim.start_and_wait()
            elif action == "redis-flush":
                client = redis.Redis.from_url(self.args.redis_url, socket_timeout=5)
                client.flushdb()
                client.close()
                self.figures.redis_flushes += 1
                log(f"Redis FLUSHDB (orders done {self.done_stories})")
            elif action == "pg-restart":
                log(f"PostgreSQL stop (orders done {self.done_stories})")
                started = time.monotonic()
                try:
                    subprocess.run(shlex.split(self.args.pg_stop_cmd), check=True,
                                   capture_output=True, timeout=120)
                    time.sleep(self.args.pg_down)
                finally:
                    self.ensure_postgres()
                self.figures.pg_restarts += 1
                self.figures.pg_down_seconds = round(time.monotonic() - started, 1)
                log(f"PostgreSQL back after {self.figures.pg_down_seconds} s")

    def postgres_up(self) -> bool:
        try:
            with psycopg.connect(self.args.database_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def ensure_postgres(self) -> None:
        for _ in range(3):
            if self.postgres_up():
                return
            subprocess.run(shlex.split(self.args.pg_start_cmd), capture_output=True, timeout=120)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self.postgres_up():
                    return
                time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL is not coming back: {self.args.pg_start_cmd}")

    # -- settling and judging ----------------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db_url, connect_timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def settle(self, timeout: float) -> bool:
        """Wait until Stripe has nothing in flight, every event it made is stored and finished,
        and the outbox is empty; quiet for two seconds running. False on timeout."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        idle_since: float | None = None
        last_report = 0.0
        while time.monotonic() < deadline and not self.aborting.is_set():
            assert self.emulator is not None
            self.emulator.fire_due()
            state = self.emulator.status()
            created = state["events"]
            try:
                (stored, open_work), = self.query(
                    "SELECT count(*), count(*) FILTER (WHERE status IN"
                    " ('pending', 'processing', 'retrying')) FROM ichido_events")
                (unsent,), = self.query("SELECT count(*) FROM ichido_outbox"
                                        " WHERE status = 'pending'")
            except psycopg.Error:
                time.sleep(1)
                continue
            missing = created - stored
            sending = state["busy"]
            now = time.monotonic()
            idle_since = None if sending else (idle_since or now)
            gave_up_waiting = idle_since is not None and now - idle_since > 15
            busy = open_work or unsent or sending or (missing and not gave_up_waiting)
            if now - last_report > 10:
                log(f"settling: {created} events, {missing} not stored yet, {open_work} to "
                    f"process, {unsent} outbox messages to send")
                last_report = now
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > 2:
                return True
            time.sleep(0.5)
        return False

    def judge(self, seconds: float, settled: bool) -> dict[str, Any]:
        from ichido.config import Settings
        from ichido.db import open_database
        from ichido.inbox import open_inbox

        assert self.emulator is not None
        stripe = self.emulator.dump(self.tmp / "stripe.json")
        events = stripe["events"]  # oldest first: the order Stripe made them in
        sent = stripe["stats"]
        store = open_database(Settings(database_url=self.db_url))
        try:
            inbox = open_inbox(Settings(database_url=self.db_url), store)
            stats = inbox.stats()
            inbox.close()
            with store.reading() as tx:
                stored = dict(tx.execute("SELECT id, status FROM ichido_events").fetchall())
                orders = {r[0]: r for r in tx.execute(
                    "SELECT id, product_id, kind, quantity, amount, payment_method, status,"
                    " payment_intent, voucher_url, email, created_at, updated_at, product_name,"
                    " idempotency_key, request_fingerprint FROM shop_orders").fetchall()}
                requests = tx.execute("SELECT id, order_id, amount FROM shop_refund_requests"
                                      ).fetchall()
                outbox = Counter(dict(tx.execute("SELECT status, count(*) FROM ichido_outbox"
                                                 " GROUP BY status").fetchall()))
                stock = dict(tx.execute("SELECT product_id, available FROM shop_stock"
                                        ).fetchall())
            live = read_states(store)
        finally:
            store.close()

        problems: list[str] = []
        lost_ids = [e["id"] for e in events if stored.get(e["id"]) not in ("processed", "ignored")]
        problems += [f"lost event {i} ({stored.get(i, 'never stored')})" for i in lost_ids[:20]]

        double: Counter = Counter()
        missing: Counter = Counter()
        intents = Counter(order_id for _, order_id in stripe["intents"])
        refunds_by_request = Counter(request_id for _, request_id, _ in stripe["refunds"])
        for order_id in orders:
            n = intents.get(order_id, 0)
            if n > 1:
                double["payment_intents"] += n - 1
                problems.append(f"{order_id}: {n} PaymentIntents at Stripe")
            elif n == 0:
                missing["payment_intents"] += 1
                problems.append(f"{order_id}: no PaymentIntent at Stripe")
        for request_id, order_id, _ in requests:
            n = refunds_by_request.get(request_id, 0)
            if n > 1:
                double["stripe_refunds"] += n - 1
                problems.append(f"{order_id}: refund request {request_id} made {n} refunds")
            elif n == 0:
                missing["stripe_refunds"] += 1
                problems.append(f"{order_id}: refund request {request_id} made no refund")
        stray = set(refunds_by_request) - {r[0] for r in requests}
        double["stray_refunds"] += len(stray)

        # Mail: exactly what the final state calls for, each once (the file name is its key).
        mails = Counter(p.name.removesuffix(".eml") for p in (self.tmp / "mail").glob("*.eml"))
        expected_mail = set()
        for order_id, row in orders.items():
            state = live.get(order_id, {})
            if row[5] == "konbini" and row[8]:
                expected_mail.add(f"{order_id}--voucher")
            if row[6] in REACHED_PAID:
                expected_mail.add(f"{order_id}--paid")
                if row[2] in SHIPPED:
                    expected_mail.add(f"{order_id}--warehouse-ship")
            if state.get("shipment") == "canceled":
                expected_mail.add(f"{order_id}--warehouse-cancel")
        double["mail"] += sum(n - 1 for n in mails.values() if n > 1)
        double["unexpected_mail"] += len(set(mails) - expected_mail)
        missing["mail"] += len(expected_mail - set(mails))
        problems += [f"unexpected mail {m}" for m in sorted(set(mails) - expected_mail)[:10]]
        problems += [f"missing mail {m}" for m in sorted(expected_mail - set(mails))[:10]]
        missing["outbox_unsent"] += sum(n for status, n in outbox.items() if status != "sent")

        # Fulfilment: one entitlement / shipment for each order that was paid, none otherwise.
        for order_id, row in orders.items():
            state = live.get(order_id, {})
            paid = row[6] in REACHED_PAID
            wants_ent = paid and row[2] == "video_ticket"
            wants_ship = paid and row[2] in SHIPPED
            if (state.get("entitlement") is not None) != wants_ent:
                (missing if wants_ent else double)["entitlements"] += 1
                problems.append(f"{order_id}: entitlement {state.get('entitlement')} for {row[6]}")
            if (state.get("shipment") is not None) != wants_ship:
                (missing if wants_ship else double)["shipments"] += 1
                problems.append(f"{order_id}: shipment {state.get('shipment')} for {row[6]}")

        # Stock: taken once per order, given back once when the order lets it go.
        held = sum(row[3] for order_id, row in orders.items() if row[1] == "tour-tshirt" and (
            row[6] in ("created", "awaiting_payment", "paid", "partially_refunded")
            or (row[6] == "refunded" and live.get(order_id, {}).get("shipment") != "canceled")))
        if "tour-tshirt" in stock and stock["tour-tshirt"] != STOCK - held:
            double["stock"] += abs(STOCK - held - stock["tour-tshirt"])
            problems.append(f"stock of tour-tshirt is {stock['tour-tshirt']}, expected "
                            f"{STOCK - held}")

        # Final states against an in-order replay of every event.
        replayed = replay_states(self.tmp / "replay.db", list(orders.values()), events)
        mismatched = [o for o in orders if live.get(o) != replayed.get(o)]
        problems += [f"{o}: live {live.get(o)} but in-order replay {replayed.get(o)}"
                     for o in mismatched[:20]]

        # Each buyer's story, as planned.
        unexpected = []
        for plan in self.plans:
            if plan.error:
                unexpected.append(plan)
                problems.append(f"order #{plan.index}: {plan.error}")
                continue
            got = orders.get(plan.order_id or "")
            if got is None or got[6] != plan.expected_status():
                unexpected.append(plan)
                problems.append(f"order #{plan.index} {plan.order_id}: "
                                f"{got[6] if got else 'missing'}, planned {plan.expected_status()}")
        endpoints = sent["endpoints"].values()
        result = {
            "orders": len(self.plans),
            "events": len(events),
            "deliveries": sent["attempts"],
            "duplicate_copies_sent": sent["duplicates_sent"],
            "receivers": len(self.receivers),
            "received": stats["received"],
            "unique": stats["unique"],
            "duplicates_cache": stats["duplicates_cache"],
            "duplicates_durable": stats["duplicates_durable"],
            "delivery_failures": sum(e["failed"] for e in endpoints),
            "gave_up": sum(e["gave_up"] for e in endpoints),
            "kills": dict(self.figures.kills),
            "redis_flushes": self.figures.redis_flushes,
            "pg_restarts": self.figures.pg_restarts,
            "pg_down_seconds": self.figures.pg_down_seconds,
            "client_retries": self.figures.client_retries,
            "dead": stats["dead"],
            "lost": len(lost_ids),
            "double_effects": sum(double.values()),
            "missing_effects": sum(missing.values()),
            "mismatched_states": len(mismatched),
            "unexpected_outcomes": len(unexpected),
            "settled": settled,
            "seconds": round(seconds, 1),
            "events_per_second": round(len(events) / seconds, 1) if seconds else None,
            "double_effects_by_kind": {k: v for k, v in double.items() if v},
            "missing_effects_by_kind": {k: v for k, v in missing.items() if v},
            "problems": problems[:60],
        }
        return result

    # -- the whole run -----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.setup()
        log(f"{len(self.plans)} orders, {len(self.receivers)} receivers, {len(self.workers)} "
            f"workers × {self.args.worker_threads} threads, schema {self.schema}")
        self.plan_faults()
        self.placing.set()
        chaos = threading.Thread(target=self.chaos, name="chaos", daemon=True)
        chaos.start()
        reporter = threading.Thread(target=self.report_progress, daemon=True)
        reporter.start()
        concurrency = self.args.concurrency or max(2, min(32, len(self.plans) // 10))
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="buyer")
        try:
            list(pool.map(self.story, self.plans))
        except BaseException:  # interrupted: let the buyers give up, then tear down
            self.aborting.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.placing.clear()
        chaos.join(300)
        for service in (*self.receivers, *self.workers):  # all up for the end
            service.start_and_wait()
        self.ensure_postgres()
        log("every buyer is done; letting every delivery, retry and outbox message land")
        settled = self.settle(self.args.settle_timeout)
        seconds = time.monotonic() - started
        for service in (*self.receivers, *self.workers):  # freeze, then look
            service.stop()
        result = self.judge(seconds, settled)
        if self.chaos_error is not None:
            result["problems"].insert(0, f"chaos failed: {self.chaos_error!r}")
            result["unexpected_outcomes"] += 1
        return result

    def report_progress(self) -> None:
        while self.placing.is_set():
            time.sleep(10)
            if self.placing.is_set():
                log(f"orders done {self.done_stories}/{len(self.plans)}, events "
                    f"{self.emulator_state['events']}, kills "
                    f"{sum(self.figures.kills.values())}")


# -- reading and replaying states --------------------------------------------------------------

def read_states(store: Any) -> dict[str, dict[str, Any]]:
    """Each order's observable outcome: status, entitlement, shipment, refunds."""
    with store.reading() as tx:
        orders = tx.execute("SELECT id, status FROM shop_orders").fetchall()
        entitlements = {r[0]: "revoked" if r[1] is not None else "granted" for r in tx.execute(
            "SELECT order_id, revoked_at FROM shop_entitlements").fetchall()}
        shipments = dict(tx.execute("SELECT order_id, status FROM shop_shipments").fetchall())
        refunds: dict[str, list] = {}
        for order_id, refund_id, amount, status in tx.execute(
                "SELECT order_id, id, amount, status FROM shop_refunds").fetchall():
            refunds.setdefault(order_id, []).append((refund_id, int(amount), status))
    return {order_id: {"status": status, "entitlement": entitlements.get(order_id),
                       "shipment": shipments.get(order_id),
                       "refunds": sorted(refunds.get(order_id, []))}
            for order_id, status in orders}


def replay_states(path: Path, orders: list[tuple], events: list[dict[str, Any]]
                  ) -> dict[str, dict[str, Any]]:
    """Every event once, in the order Stripe created them, through the shop's own handlers, into
    a fresh SQLite store holding only the orders as they were placed: the states exactly-once,
    in-order processing gives. A handler asking to be retried later is, after the others."""
    from ichido.config import Settings
    from ichido.shop import events as shop_events
    from ichido.shop.schema import SHOP_SCHEMA
    from ichido.errors import RetryLater
    from ichido.event import Event
    from ichido.handlers import HandlerRegistry
    from ichido.db import open_database
    from ichido.outbox import OUTBOX_SCHEMA

    store = open_database(Settings(database_url=f"sqlite:///{path}"),
                          steps=[*OUTBOX_SCHEMA, *SHOP_SCHEMA])
    registry = HandlerRegistry()
    shop_events.register(registry)  # what the shop registers on its app
    try:
        with store.transaction() as tx:
            tx.executemany(
                "INSERT INTO shop_orders (id, product_id, kind, quantity, amount, payment_method,"
                " status, email, created_at, updated_at, product_name, idempotency_key,"
                " request_fingerprint) VALUES (?, ?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?, ?)",
                [(r[0], r[1], r[2], r[3], r[4], r[5], r[9], r[10], r[11], r[12], r[13], r[14])
                 for r in orders])
            pending = [e for e in events if registry.for_type(e["type"])]
            for _ in range(5):
                later = []
                for doc in pending:
                    event = Event.from_body(orjson.dumps(doc))
                    tx.execute("SAVEPOINT one_event")
                    try:
                        for handler in registry.for_type(event.type):
                            handler(event, tx)
                    except RetryLater:
                        tx.execute("ROLLBACK TO one_event")
                        later.append(doc)
                    tx.execute("RELEASE one_event")
                pending = later
        return read_states(store)
    finally:
        store.close()


# -- the command -------------------------------------------------------------------------------

def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench torture", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--database-url", default=os.environ.get("ICHIDO_TORTURE_DATABASE_URL",
                                                                 DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("ICHIDO_TORTURE_REDIS_URL",
                                                              DEFAULT_REDIS))
    parser.add_argument("--receivers", type=int, default=2,
                        help="receiver processes; every event goes to each at once")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--worker-threads", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=0,
                        help="buyers at once (default: orders/10, 2 to 32)")
    parser.add_argument("--duplicate-rate", type=float, default=0.3)
    parser.add_argument("--reorder-window", type=float, default=0.3)
    parser.add_argument("--sender-concurrency", type=int, default=48,
                        help="webhook requests the emulator has on the wire at once")
    parser.add_argument("--max-in-flight", type=int, default=400,
                        help="buyers pause while the emulator has more deliveries under way")
    parser.add_argument("--lease", default="5s", help="ICHIDO_LEASE of the processes")
    parser.add_argument("--kill-every", type=float, default=8.0,
                        help="seconds between random kill -9s (after the planned ones)")
    parser.add_argument("--no-kills", action="store_true")
    parser.add_argument("--no-redis-flush", action="store_true")
    parser.add_argument("--no-pg-restart", action="store_true")
    parser.add_argument("--pg-down", type=float, default=2.0, help="seconds PostgreSQL is down")
    parser.add_argument("--pg-stop-cmd", default=os.environ.get("ICHIDO_TORTURE_PG_STOP", PG_STOP))
    parser.add_argument("--pg-start-cmd", default=os.environ.get("ICHIDO_TORTURE_PG_START",
                                                                 PG_START))
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    parser.add_argument("--story-timeout", type=float, default=240.0,
                        help="seconds one buyer's step may take, retries included")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the schema and files")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if args.orders < 1 or args.receivers < 1 or args.workers < 1:
        parser.error("--orders, --receivers and --workers must be at least 1")
    return args


def main(argv: list[str]) -> int:
    if "--emulator-child" in argv:
        return serve_emulator(argv)
    args = parse(argv)
    torture = Torture(args)

    def interrupted(signum: int, _frame: Any) -> None:
        torture.aborting.set()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        result = torture.run()
    except KeyboardInterrupt:
        log("interrupted: stopping every process this run started")
        return 130
    finally:
        torture.aborting.set()
        torture.teardown()
        signal.signal(signal.SIGTERM, previous)
    ok = not any(result[k] for k in ("lost", "double_effects", "missing_effects",
                                     "mismatched_states", "unexpected_outcomes", "dead"))
    print(f"ichido torture (seed {args.seed}): {result['orders']} orders, {result['events']} "
          f"events, {result['deliveries']} deliveries to {result['receivers']} receivers in "
          f"{result['seconds']} s ({result['events_per_second']} events/s)")
    print(f"  faults: kill -9 {result['kills']}, Redis flushes {result['redis_flushes']}, "
          f"PostgreSQL restarts {result['pg_restarts']} ({result['pg_down_seconds']} s down), "
          f"{result['delivery_failures']} failed deliveries retried")
    print(f"  duplicates caught: {result['duplicates_cache']} by Redis, "
          f"{result['duplicates_durable']} by PostgreSQL")
    for name in ("lost", "double_effects", "missing_effects", "mismatched_states",
                 "unexpected_outcomes", "dead"):
        print(f"  {name.replace('_', ' ')}: {result[name]}")
    for problem in result["problems"]:
        print(f"  ✗ {problem}")
    print("  ✓ nothing lost, nothing applied twice, states as an in-order replay" if ok
          else "  ✗ FAILED")
    if args.json:
        print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
