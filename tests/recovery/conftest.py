"""A world for recovery's end-to-end tests: the emulator on loopback, the shop in-process, and
its receiver served on a fixed port that a test can take down and bring back.

Webhook retries run at ``TIME_SCALE`` of Stripe's schedule: three days of retries pass in a
few seconds, so "Stripe gives up" is something a test can wait for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import orjson
import pytest

from ichido.config import Settings
from ichido.emulator import Emulator, EmulatorServer
from ichido.serving import ThreadedServer
from tests.support import ROOT, SECRET, cli_env, free_port, wait_until

KEY = "sk_test_ichido_recovery"
TIME_SCALE = 0.00002  # Stripe's 72 hours of retries in about 5 seconds
DAY = 86_400


class World:
    def __init__(self, tmp_path: Path, database_url: str, name: str) -> None:
        from ichido.shop.app import create_shop
        from ichido.shop.settings import ShopSettings

        self.database_url = database_url
        self.port = free_port()
        self.webhook_url = f"http://127.0.0.1:{self.port}/webhooks/stripe"
        self.emulator = Emulator(webhook_urls=[self.webhook_url], webhook_secrets=[SECRET],
                                 api_key=KEY, time_scale=TIME_SCALE)
        self.emulator_server = EmulatorServer(self.emulator).start()
        self.mail_dir = tmp_path / f"mail-{name}"
        settings = Settings(
            database_url=database_url, redis_url=os.environ.get("ICHIDO_REDIS_URL"),
            webhook_secrets=(SECRET,), poll_interval_seconds=0.02, retry_base_seconds=0.02,
            retry_cap_seconds=0.2)
        shop_settings = ShopSettings(stripe_api_key=KEY, stripe_api_base=self.emulator_server.url,
                                     mail_dir=str(self.mail_dir))
        self.shop = create_shop(settings, shop_settings, workers=0)
        self.app = self.shop.app
        self.app.migrate()
        self.app.start()
        self.receiver: ThreadedServer | None = None
        self.stripe = httpx.Client(base_url=self.emulator_server.url, timeout=30,
                                   headers={"Authorization": f"Bearer {KEY}"})

    # -- the receiver ------------------------------------------------------------------------
    def up(self) -> None:
        self.receiver = ThreadedServer(self.app, port=self.port).start()

    def down(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None

    def process(self) -> None:
        """Run the worker and the outbox until nothing is left (in this process)."""
        while self.app.worker().drain() + self.shop.outbox.drain():
            pass

    def settle(self) -> None:
        """Every delivery answered (or given up on), and everything stored processed."""
        assert self.emulator.settle(timeout=60), "the emulator never settled"
        wait_until(lambda: not self.emulator.sender.busy(), message="deliveries to end")
        self.process()

    # -- the shop and the buyer --------------------------------------------------------------
    def order(self, product: str, method: str, email: str) -> str:
        from ichido.shop.order_request import OrderRequest

        status, order = self.shop.place_order(OrderRequest(product, 1, method, email), None)
        assert status == 200, order
        return order["id"]

    def refund(self, order_id: str) -> None:
        self.shop.request_refund(order_id, None, None)
        self.shop.outbox.drain()

    def payment_intent(self, order_id: str) -> str:
        with self.app.database.reading() as tx:
            return tx.execute("SELECT payment_intent FROM shop_orders WHERE id = ?",
                              (order_id,)).fetchone()[0]

    def advance(self, seconds: int) -> None:
        self.emulator.advance(seconds)

    # -- looking -----------------------------------------------------------------------------
    def gave_up(self) -> int:
        return self.emulator.stats()["endpoints"][self.webhook_url]["gave_up"]

    def reconcile(self, *args: str) -> dict[str, Any]:
        """``ichido reconcile --json`` in a subprocess, as an operator runs it."""
        env = cli_env(self.database_url, STRIPE_API_KEY=KEY,
                      STRIPE_API_BASE=self.emulator_server.url)
        done = subprocess.run([sys.executable, "-m", "ichido", "reconcile", "--json", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return orjson.loads(done.stdout)

    def stats(self) -> dict[str, Any]:
        """``ichido stats --json``."""
        done = subprocess.run([sys.executable, "-m", "ichido", "stats", "--json"], cwd=ROOT,
                              env=cli_env(self.database_url), capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return orjson.loads(done.stdout)

    def state(self) -> dict[str, Any]:
        """What the shop ended with, per buyer e-mail (order ids differ between worlds)."""
        with self.app.database.reading() as tx:
            orders = {row[0]: row[1:] for row in tx.execute(
                "SELECT id, email, status FROM shop_orders").fetchall()}
            refunds = Counter((orders[r[0]][0], r[1]) for r in tx.execute(
                "SELECT order_id, status FROM shop_refunds").fetchall())
            granted = {orders[r[0]][0]: r[1] is not None for r in tx.execute(
                "SELECT order_id, revoked_at FROM shop_entitlements").fetchall()}
            shipped = {orders[r[0]][0]: r[1] for r in tx.execute(
                "SELECT order_id, status FROM shop_shipments").fetchall()}
            outbox = Counter((orders[r[0].split(":")[1]][0] if r[0].startswith("mail:")
                              else r[1]) for r in tx.execute(
                "SELECT key, kind FROM ichido_outbox WHERE kind <> 'alert'").fetchall())
        mails = Counter(orders[p.name.split("--")[0]][0] for p in self.mail_dir.glob("*.eml"))
        return {"orders": sorted(v for v in orders.values()), "refunds": refunds,
                "entitlements_revoked": granted, "shipments": shipped, "outbox": outbox,
                "mails": mails}

    def close(self) -> None:
        self.down()
        self.stripe.close()
        self.emulator_server.stop()
        self.app.close()


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(database_url: str, name: str = "w") -> World:
        world = World(tmp_path, database_url, name)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


class FaultyProxy:
    """A loopback HTTP proxy in front of the emulator: ``faults`` holds one status per coming
    ``GET /v1/events`` request (None passes it through), e.g. ``[429, 429]`` rate-limits the
    next two. Stripe's real 429 body comes with it, so the SDK raises ``RateLimitError``."""

    def __init__(self, upstream: str) -> None:
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        self.upstream = upstream
        self.faults: list[int | None] = []
        self.seen: list[str] = []
        self.faults_v2: list[int | None] = []  # the same for ``GET /v2/core/events``
        self.seen_v2: list[str] = []

        async def forward(request: Any) -> Response:
            path = request.url.path
            if request.method == "GET" and path == "/v1/events":
                self.seen.append(str(request.url.query))
                fault = self.faults.pop(0) if self.faults else None
                if fault is not None:
                    kind = "rate_limit_error" if fault == 429 else "invalid_request_error"
                    body = orjson.dumps({"error": {"type": kind, "message": f"injected {fault}"}})
                    return Response(body, status_code=fault, media_type="application/json")
            if request.method == "GET" and path == "/v2/core/events":
                self.seen_v2.append(str(request.url.query))
                fault = self.faults_v2.pop(0) if self.faults_v2 else None
                if fault is not None:
                    body = orjson.dumps({"error": {"type": "invalid_request", "code":
                                                   "invalid_request", "message": "injected"}})
                    return Response(body, status_code=fault, media_type="application/json")
            async with httpx.AsyncClient(base_url=self.upstream) as client:
                answer = await client.request(request.method, path, params=request.query_params,
                                              content=await request.body(),
                                              headers={k: v for k, v in request.headers.items()
                                                       if k.lower() != "host"})
            return Response(answer.content, status_code=answer.status_code,
                            media_type="application/json")

        self.server = ThreadedServer(Starlette(routes=[Route("/{path:path}", forward,
                                                             methods=["GET", "POST"])])).start()
        self.url = self.server.url


@pytest.fixture
def stripe_world() -> Iterator[tuple[Emulator, FaultyProxy]]:
    """An emulator with no webhook endpoint, and a faulty proxy in front of it."""
    emulator = Emulator(api_key=KEY)
    server = EmulatorServer(emulator).start()
    proxy = FaultyProxy(server.url)
    yield emulator, proxy
    proxy.server.stop()
    server.stop()
