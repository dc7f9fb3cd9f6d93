"""Fixtures for the shop's end-to-end tests (this folder only).

``ShopWorld`` is one local Stripe (the emulator, served from this process, with chaos on the
wire) and the shop, either as a real ``ichido serve --app ichido.shop.app:create_app``
subprocess that a test can ``kill -9`` and restart on the same port and database, or in-process
(a ``ThreadedServer``) when a test needs the ``Shop`` object. Both listen on loopback; the
emulator's webhooks go to the shop's ``/webhooks/stripe``.

``create_crashing_shop`` is the shop with crash points for the kill tests: the process sends
itself SIGKILL (what ``kill -9`` does) at a named point, once (a marker file remembers it across
restarts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from ichido.config import Settings
from ichido.db import Database, open_database
from ichido.outbox import OUTBOX_SCHEMA
from ichido.shop.schema import SHOP_SCHEMA
from ichido.shop.settings import ShopSettings
from ichido.emulator import Emulator, EmulatorServer
from tests.support import ROOT, SECRET, IchidoProcess, free_port, open_store, wait_until

KEY = "sk_test_ichido_shop_e2e"
SHOP_APP = "ichido.shop.app:create_app"
CRASHING_APP = "tests.shop.conftest:create_crashing_shop"
# Webhook retries: Stripe's schedule (1 min, doubling) times this: 12 ms, 24 ms, 48 ms, ...
# (16 attempts over 52 s: a shop down for a restart gets its events soon after it is back.)
TIME_SCALE = 0.0002
DEADLINE = 60.0  # for hung tests only: nothing asserts how fast anything is


# -- the shop as a subprocess ------------------------------------------------------------------

class ShopProcess(IchidoProcess):
    """``ichido serve --app …`` on a fixed port, so that it can be killed and started again
    where the emulator keeps delivering (its output goes to a file: a pipe could fill)."""

    def __init__(self, database_url: str, *, port: int, env: dict[str, str],
                 app: str = SHOP_APP, workers: int = 2) -> None:
        full_env = {**os.environ, "ICHIDO_DATABASE_URL": database_url,
                    "STRIPE_WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT), **env}
        super().__init__(["serve", "--port", str(port), "--workers", str(workers), "--app", app],
                         env=full_env, port=port, cwd=ROOT, name="shop")
        self.app, self.workers = app, workers
        # The app's own tables, as a deployment runs `ichido migrate --app` before serving.
        subprocess.run([sys.executable, "-m", "ichido", "migrate", "--app", app], cwd=ROOT,
                       env=self.env, check=True, capture_output=True, timeout=DEADLINE)

    def start(self, *, may_die: bool = False) -> "ShopProcess":  # type: ignore[override]
        """Start and wait until healthy. ``may_die``: a crash point may kill it even before it
        answers (its workers start before its socket does); that is then fine."""
        self.launch()
        try:
            self.wait_ready(DEADLINE)
        except RuntimeError:
            if may_die and self.returncode() == -signal.SIGKILL:
                return self
            raise
        return self


# -- the world: emulator + shop + what the test looks at -----------------------------------------

class ShopWorld:
    def __init__(self, tmp_path: Path, database_url: str, *, mode: str = "process",
                 app: str = SHOP_APP, duplicate_rate: float = 0.3,
                 reorder_window: float = 0.2, seed: int | None = 7,
                 catalog: Path | None = None, env: dict[str, str] | None = None,
                 start: bool = True) -> None:
        self.database_url = database_url
        self.mail_dir = tmp_path / "mail"
        shop_port, emulator_port = free_port(), free_port()
        self.emulator = Emulator(
            webhook_urls=[f"http://127.0.0.1:{shop_port}/webhooks/stripe"],
            webhook_secrets=[SECRET], api_key=KEY, duplicate_rate=duplicate_rate,
            reorder_window=reorder_window, time_scale=TIME_SCALE, seed=seed)
        self.emulator_server = EmulatorServer(self.emulator, port=emulator_port).start()
        self.emulator_url = self.emulator_server.url
        self.process: ShopProcess | None = None
        self.shop: Any = None  # the in-process Shop
        self._thread_server: Any = None
        if mode == "process":
            shop_env = {"STRIPE_API_KEY": KEY, "STRIPE_API_BASE": self.emulator_url,
                        "ICHIDO_MAIL_DIR": str(self.mail_dir), "ICHIDO_POLL_INTERVAL": "0.05",
                        "ICHIDO_RETRY_BASE": "0.05", "ICHIDO_RETRY_CAP": "0.5", **(env or {})}
            if catalog is not None:
                shop_env["ICHIDO_CATALOG"] = str(catalog)
            self.process = ShopProcess(database_url, port=shop_port, env=shop_env, app=app)
            if start:
                self.process.start()
            self.url = self.process.url
        else:
            from ichido.serving import ThreadedServer
            from ichido.shop.app import create_shop

            settings = Settings(
                database_url=database_url, redis_url=os.environ.get("ICHIDO_REDIS_URL"),
                webhook_secrets=(SECRET,), poll_interval_seconds=0.05, retry_base_seconds=0.05,
                retry_cap_seconds=0.5)
            self.shop = create_shop(settings, ShopSettings.from_env(
                env or {}, stripe_api_key=KEY, stripe_api_base=self.emulator_url,
                mail_dir=str(self.mail_dir), catalog_path=str(catalog) if catalog else None),
                workers=2)
            self.shop.app.migrate()
            self._thread_server = ThreadedServer(self.shop.app, port=shop_port).start()
            self.url = self._thread_server.url
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.stripe = httpx.Client(base_url=self.emulator_url, timeout=30,
                                   headers={"Authorization": f"Bearer {KEY}"})
        self._store: Any = None

    # -- the shop's API ------------------------------------------------------------------------

    def order(self, key: str | None = None, **body: Any) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.http.post("/orders", json=body, headers=headers)

    def placed(self, **body: Any) -> dict[str, Any]:
        """An order that must be accepted (201)."""
        response = self.order(**body)
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, order_id: str) -> dict[str, Any]:
        response = self.http.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def refund(self, order_id: str, amount: int | None = None,
               key: str | None = None) -> httpx.Response:
        body = {} if amount is None else {"amount": amount}
        headers = {"Idempotency-Key": key} if key else {}
        return self.http.post(f"/orders/{order_id}/refund", json=body, headers=headers)

    def wait_order(self, order_id: str, check: Callable[[dict[str, Any]], bool],
                   what: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def ready() -> bool:
            try:
                found.update(self.get(order_id))
            except (httpx.HTTPError, AssertionError):
                return False  # the shop is restarting
            return check(found)

        wait_until(ready, timeout=DEADLINE, interval=0.05,
                   message=f"{order_id}: {what} (last seen: {found})")
        return dict(found)

    def wait_status(self, order_id: str, status: str) -> dict[str, Any]:
        return self.wait_order(order_id, lambda o: o["status"] == status, f"status {status}")

    # -- the emulator ----------------------------------------------------------------------------

    def control(self, path: str, **form: Any) -> dict[str, Any]:
        response = self.stripe.post(f"/_emulator/{path}", data=form)
        assert response.status_code == 200, response.text
        return response.json()

    def stripe_list(self, kind: str) -> list[dict[str, Any]]:
        page = self.stripe.get(f"/v1/{kind}", params={"limit": 100}).json()
        assert not page["has_more"], f"more than 100 {kind}: page through them"
        return page["data"]

    def at_stripe(self, kind: str) -> Counter:
        """order id → how many of ``kind`` (payment_intents, refunds) Stripe holds for it."""
        return Counter((item.get("metadata") or {}).get("order_id")
                       for item in self.stripe_list(kind))

    # -- effects outside the API ---------------------------------------------------------------

    def mails(self, order_id: str) -> list[str]:
        """What was mailed about the order, one entry per file ``{order_id}--{what}.eml``."""
        return sorted(p.name.split("--", 1)[1].removesuffix(".eml")
                      for p in self.mail_dir.glob(f"{order_id}--*.eml"))

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = open_store(self.database_url)
        return self._store

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.store.reading() as tx:
            return [tuple(row) for row in tx.execute(sql, params).fetchall()]

    def outbox(self) -> dict[str, tuple[str, str, int]]:
        """key → (kind, status, attempts) of every outbox row."""
        return {row[0]: (row[1], row[2], row[3]) for row in self.query(
            "SELECT key, kind, status, attempts FROM ichido_outbox")}

    def settle(self, quiet_for: float = 0.5) -> None:
        """Wait until nothing is in flight anywhere: the emulator holds no delivery (duplicates
        and reordered copies included), the inbox has nothing pending, processing or retrying,
        and the outbox nothing pending, for ``quiet_for`` seconds in a row."""
        quiet_since: float | None = None
        deadline = time.monotonic() + DEADLINE
        while True:
            assert time.monotonic() < deadline, "the system never became quiet"
            self.emulator.settle(timeout=DEADLINE)
            stats = self.store.stats()
            pending_outbox = self.query(
                "SELECT count(*) FROM ichido_outbox"
                " WHERE status IN ('pending', 'processing', 'retrying')")[0][0]
            busy = (stats["pending"] + stats["processing"] + stats["retrying"] + pending_outbox
                    or self.emulator.sender.busy())
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_for:
                return
            time.sleep(0.05)

    def close(self) -> None:
        self.http.close()
        self.stripe.close()
        if self.process is not None:
            self.process.stop()
            print(f"--- shop output ---\n{self.process.output()}")  # shown when a test fails
        if self._thread_server is not None:
            self._thread_server.stop()
        self.emulator_server.stop()
        if self._store is not None:
            self._store.close()


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., ShopWorld]]:
    """``make_world(database_url, mode="process"|"thread", ...)``; everything stops afterwards.
    ``catalog_toml``: the catalogue's text, written to a file the shop reads (as ``catalog``).

    Ask for ``database_url`` before ``make_world`` in a test's arguments, so that the shop
    stops before its PostgreSQL schema is dropped."""
    worlds: list[ShopWorld] = []

    def make(database_url: str, *, catalog_toml: str | None = None,
             **options: Any) -> ShopWorld:
        if catalog_toml is not None:
            options["catalog"] = tmp_path / "catalog.toml"
            options["catalog"].write_text(catalog_toml)
        world = ShopWorld(tmp_path, database_url, **options)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shop.db'}"



def open_shop_database(database_url: str) -> Database:
    """The shop's database alone, without an app: ichido's outbox and the shop's tables."""
    return open_database(Settings(database_url=database_url), migrate=True,
                         steps=[*OUTBOX_SCHEMA, *SHOP_SCHEMA])


@pytest.fixture
def store(database_url: str) -> Iterator[Database]:
    """The shop's database on each backend, for tests that drive its rules directly."""
    database = open_shop_database(database_url)
    yield database
    database.close()


# -- the shop with crash points (loaded by `ichido serve --app tests.shop.conftest:…`) ---------

CRASH_POINTS_ENV = "ICHIDO_TEST_CRASH_AT"
CRASH_MARKERS_ENV = "ICHIDO_TEST_CRASH_DIR"


def create_crashing_shop() -> Any:
    """The shop, plus SIGKILL of its own process at each point named in $ICHIDO_TEST_CRASH_AT,
    the first time only (a marker file in $ICHIDO_TEST_CRASH_DIR survives the restart):

    - ``handler``: inside the transaction of a konbini ``payment_intent.succeeded`` event, after
      the shop's handler wrote the order's entitlement and queued its mail, before the commit;
    - ``mail``: after the "paid" mail file of a konbini order is written, before its outbox
      row is marked sent;
    - ``refund``: after Stripe created the refund, before the shop's database heard of it;
    - ``grant``: inside the transaction of an ``invoice.paid`` event, after the shop's handler
      granted a subscription's access, before the commit;
    - ``invoice-mail``: after a subscription invoice's voucher mail file is written, before its
      outbox row is marked sent.
    """
    from ichido.shop.app import create_shop

    shop = create_shop()
    points = set(filter(None, os.environ.get(CRASH_POINTS_ENV, "").split(",")))
    markers = Path(os.environ.get(CRASH_MARKERS_ENV, "."))

    def crash_once(point: str) -> None:
        if point not in points:
            return
        try:
            (markers / point).open("x").close()  # exclusive create: only the first time
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    @shop.app.on("payment_intent.succeeded")
    def crash_inside_the_event_transaction(event: Any, tx: Any) -> None:
        pi = event.object
        if "konbini" not in (pi.get("payment_method_types") or []):
            return
        order_id = (pi.get("metadata") or {}).get("order_id")
        queued = tx.execute("SELECT count(*) FROM ichido_outbox WHERE key = ?",
                            (f"mail:{order_id}:paid",)).fetchone()[0]
        granted = tx.execute("SELECT count(*) FROM shop_entitlements WHERE order_id = ?",
                             (order_id,)).fetchone()[0]
        if queued and granted:  # the effects are written, not committed
            crash_once("handler")

    @shop.app.on("invoice.paid")
    def crash_inside_the_grant(event: Any, tx: Any) -> None:
        parent = event.object.get("parent") or {}  # since basil: parent.subscription_details
        sub_id = ((parent.get("subscription_details") or {}).get("metadata") or {}).get(
            "subscription_id")
        granted = tx.execute("SELECT count(*) FROM shop_access_changes WHERE subscription_id = ?"
                             " AND change = 'granted'", (sub_id,)).fetchone()[0]
        if granted:  # written by the shop's handler in this transaction, or an earlier one
            crash_once("grant")

    send_mail = shop.outbox.senders["mail"]

    def mail_then_crash(key: str, payload: dict[str, Any]) -> None:
        send_mail(key, payload)
        if ":invoice-" in key:
            crash_once("invoice-mail")
        if key.endswith(":paid"):
            with shop.app.database.reading() as tx:
                method = tx.execute("SELECT payment_method FROM shop_orders WHERE id = ?",
                                    (payload["order_id"],)).fetchone()[0]
            if method == "konbini":
                crash_once("mail")

    shop.outbox.senders["mail"] = mail_then_crash

    refunds = shop.stripe.v1.refunds
    create_refund = refunds.create

    def create_then_crash(*args: Any, **kwargs: Any) -> Any:
        refund = create_refund(*args, **kwargs)
        crash_once("refund")
        return refund

    refunds.create = create_then_crash  # type: ignore[method-assign]
    return shop.app
