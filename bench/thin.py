"""Thin events (issue 23), ratios in one run: ``python -m bench thin [--quick] [--json]``.

One process, SQLite in a temporary directory, the local Stripe on loopback:

- ``ingest``: signed deliveries/s through the real receiver over HTTP (4 client threads, no
  worker), thin notifications against snapshot events of the same changes.
- ``reads``: Stripe API reads the fetch stage sends per thin event applied, for a stream whose
  events come in bursts per object (each payment's ``v1.payment_intent.created`` and
  ``.succeeded``, and its ``v1.charge.succeeded``), delivered as the local Stripe sends them.
- ``e2e``: effects/s from the first payment made through the SDK to the last effect committed
  (one row per event in the handlers' transaction, 2 worker threads), thin destination only
  against snapshot endpoint only. The read pace is raised to 1,000/s so the machine, not
  ``ICHIDO_FETCH_RATE`` (20/s by default, under Stripe's sandbox limit), is what is measured.
- ``twin check``: worker events/s on snapshot events with a no-op handler, with the twin check
  (``ichido_changes`` insert in the handlers' transaction) and without it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import httpx
import orjson
import stripe

from ichido import App, signature
from ichido.config import Settings
from ichido.emulator import Emulator, EmulatorServer
from ichido.event import parse_delivery
from ichido.serving import ThreadedServer
from ichido.testing import free_port
from ichido.thin import twins
from ichido.thin.reader import Reader

KEY = "sk_test_ichido_bench_thin"
SECRET = "whsec_bench_thin_" + "0" * 16
THIN_TYPES = ["v1.payment_intent.created", "v1.payment_intent.succeeded", "v1.charge.succeeded"]
EFFECTS = ("effects", 1, ["CREATE TABLE effects (event_id TEXT PRIMARY KEY, shape TEXT)"])


def effect(event: Any, tx: Any) -> None:
    tx.execute("INSERT INTO effects (event_id, shape) VALUES (?, ?)", (event.id, event.shape))


class Stripe:
    """The local Stripe, ichido's app served beside it, and the official SDK between them."""

    def __init__(self, directory: str, name: str, *, thin: bool, workers: int) -> None:
        self.port = free_port()
        self.url = target = f"http://127.0.0.1:{self.port}/webhooks/stripe"
        self.emulator = Emulator(api_key=KEY, webhook_urls=[] if thin else [target],
                                 webhook_secrets=[] if thin else [SECRET])
        self.server = EmulatorServer(self.emulator).start()
        self.sdk = stripe.StripeClient(KEY, base_addresses={"api": self.server.url},
                                       max_network_retries=0)
        secrets = [SECRET]
        if thin:
            made = self.sdk.v2.core.event_destinations.create({
                "name": "bench", "type": "webhook_endpoint", "event_payload": "thin",
                "enabled_events": THIN_TYPES, "webhook_endpoint": {"url": target},
                "include": ["webhook_endpoint.signing_secret"]})
            secrets.append(str(made.webhook_endpoint.signing_secret))
        self.secrets = secrets
        settings = Settings(database_url=f"sqlite:///{os.path.join(directory, name + '.db')}",
                            webhook_secrets=tuple(secrets), fetch_rate=1000.0,
                            poll_interval_seconds=0.01)
        self.app = App(settings, workers=workers, schema=[EFFECTS])
        self.app.on("payment_intent.*", "charge.*")(effect)
        self.app.migrate()
        self.app.reader = Reader(1000.0, client=self.sdk)
        self.receiver = ThreadedServer(self.app, port=self.port).start()

    def pay(self, n: int) -> None:
        for _ in range(n):
            self.sdk.v1.payment_intents.create({
                "amount": 3000, "currency": "jpy", "allowed_payment_method_types": ["card"],
                "payment_method": "pm_card_visa", "confirm": True})

    def effects(self) -> int:
        with self.app.database.reading() as tx:
            return int(tx.execute("SELECT count(*) FROM effects").fetchone()[0])

    def close(self) -> None:
        self.receiver.stop()
        self.app.close()
        self.server.stop()


def wait(check: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.01)


# -- ingest -------------------------------------------------------------------------------------

def bodies(n: int) -> tuple[list[bytes], list[bytes]]:
    """``n`` snapshot events and ``n`` thin notifications of the same changes."""
    snaps, thins = [], []
    for i in range(n):
        pi, evt = f"pi_{uuid.uuid4().hex[:24]}", f"evt_{uuid.uuid4().hex[:24]}"
        snaps.append(orjson.dumps({
            "id": evt, "object": "event", "api_version": "2026-10-28", "created": 1_790_848_800,
            "type": "payment_intent.succeeded", "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": {"id": pi, "object": "payment_intent", "amount": 3000,
                                "currency": "jpy", "status": "succeeded",
                                "metadata": {"order": str(i)}, "description": "x" * 600}}}))
        thins.append(orjson.dumps({
            "id": f"evt_test_65{uuid.uuid4().hex}", "object": "v2.core.event",
            "type": "v1.payment_intent.succeeded", "created": "2026-10-01T10:00:00.000Z",
            "livemode": False, "context": None, "reason": None, "snapshot_event": evt,
            "related_object": {"id": pi, "type": "payment_intent",
                               "url": f"/v1/payment_intents/{pi}"}}))
    return snaps, thins


def ingest(directory: str, n: int) -> dict[str, float]:
    settings = Settings(database_url=f"sqlite:///{os.path.join(directory, 'ingest.db')}",
                        webhook_secrets=(SECRET,))
    app = App(settings, workers=0)
    app.migrate()
    server = ThreadedServer(app).start()
    rates: dict[str, float] = {}
    try:
        snaps, thins = bodies(n)
        warm, _ = bodies(200)
        for name, batch in (("warm", warm), ("snapshot", snaps), ("thin", thins)):
            local = threading.local()

            def post(body: bytes) -> int:
                client = getattr(local, "client", None)
                if client is None:
                    client = local.client = httpx.Client(timeout=30)
                return client.post(f"{server.url}/webhooks/stripe", content=body, headers={
                    "Stripe-Signature": signature.sign(body, [SECRET]),
                    "Content-Type": "application/json"}).status_code

            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                codes = list(pool.map(post, batch))
            elapsed = time.perf_counter() - started
            if set(codes) != {200}:
                raise RuntimeError(f"{name}: answers {sorted(set(codes))}")
            rates[name] = len(batch) / elapsed
    finally:
        server.stop()
        app.close()
    return {"snapshot_rps": rates["snapshot"], "thin_rps": rates["thin"],
            "thin_vs_snapshot": rates["thin"] / rates["snapshot"]}


# -- reads per applied event and e2e -----------------------------------------------------------

def reads(directory: str, payments: int) -> dict[str, float]:
    world = Stripe(directory, "reads", thin=True, workers=0)
    try:
        world.pay(payments)
        assert world.emulator.settle(timeout=120)
        world.app.worker().drain()
        applied = world.effects()
        sent = world.app.reader.reads
    finally:
        world.close()
    return {"thin_applied": applied, "api_reads": sent, "reads_per_applied": sent / applied}


def e2e(directory: str, payments: int, thin: bool) -> float:
    world = Stripe(directory, f"e2e-{'thin' if thin else 'snapshot'}", thin=thin, workers=2)
    expected = payments * 3  # created, succeeded, charge.succeeded
    try:
        world.app.start()
        started = time.perf_counter()
        world.pay(payments)
        wait(lambda: world.effects() >= expected)
        return expected / (time.perf_counter() - started)
    finally:
        world.close()


# -- the twin check ------------------------------------------------------------------------------

def worker_rate(directory: str, name: str, n: int) -> float:
    settings = Settings(database_url=f"sqlite:///{os.path.join(directory, name + '.db')}")
    app = App(settings, workers=0, schema=[EFFECTS])
    app.on("payment_intent.succeeded")(lambda event, tx: None)
    app.migrate()
    app.start()
    try:
        snaps, _ = bodies(n)
        for start in range(0, n, 1000):
            app.inbox.accept([parse_delivery(b) for b in snaps[start:start + 1000]])
        worker = app.worker()
        started = time.perf_counter()
        done = worker.drain()
        return done / (time.perf_counter() - started)
    finally:
        app.close()


def twin_check(directory: str, n: int, rounds: int) -> dict[str, float]:
    with_check, without = [], []
    original = twins.change_key
    for r in range(rounds):
        with_check.append(worker_rate(directory, f"twin-on-{r}", n))
        twins.change_key = lambda event_id, event_type, body: None  # type: ignore[assignment]
        try:
            without.append(worker_rate(directory, f"twin-off-{r}", n))
        finally:
            twins.change_key = original  # type: ignore[assignment]
    on, off = statistics.median(with_check), statistics.median(without)
    return {"with_check_eps": on, "without_check_eps": off, "cost_share": 1 - on / off}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    as_json = "--json" in argv
    n, payments, rounds = (2000, 60, 1) if quick else (10_000, 300, 3)
    directory = tempfile.mkdtemp(prefix="ichido-bench-thin-")
    load = os.getloadavg()
    try:
        result: dict[str, Any] = {"quick": quick, "load_before": round(load[0], 1)}
        result["ingest"] = ingest(directory, n)
        result["reads"] = reads(directory, payments)
        snap, thin = e2e(directory, payments, False), e2e(directory, payments, True)
        result["e2e"] = {"snapshot_eps": snap, "thin_eps": thin, "thin_vs_snapshot": thin / snap}
        result["twin_check"] = twin_check(directory, n, rounds)
        result["load_after"] = round(os.getloadavg()[0], 1)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if as_json:
        print(json.dumps(result))
        return 0
    i, r, e, t = result["ingest"], result["reads"], result["e2e"], result["twin_check"]
    print(f"thin events ({'quick' if quick else 'full'}; load average {result['load_before']}"
          f" before, {result['load_after']} after; {os.cpu_count()} cores)")
    print("| measure | snapshot | thin | ratio |\n|---|---|---|---|")
    print(f"| ingest, deliveries/s (HTTP, 4 clients) | {i['snapshot_rps']:.0f} |"
          f" {i['thin_rps']:.0f} | thin/snapshot {i['thin_vs_snapshot']:.2f} |")
    print(f"| API reads per applied thin event (bursts per object) | 0 |"
          f" {r['reads_per_applied']:.2f} ({r['api_reads']}/{r['thin_applied']}) | target ≤ 1.0 |")
    print(f"| e2e effects/s, local Stripe, 2 worker threads | {e['snapshot_eps']:.0f} |"
          f" {e['thin_eps']:.0f} | thin/snapshot {e['thin_vs_snapshot']:.2f} |")
    print(f"| worker events/s on snapshots: twin check on / off | {t['with_check_eps']:.0f} |"
          f" {t['without_check_eps']:.0f} | check costs {t['cost_share']:.1%} |")
    return 0
