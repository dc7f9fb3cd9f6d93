"""``ichido demo`` (what ``make run`` runs): the local Stripe and the shop on the embedded
default, a story played through them with chaos on the wire, and a check that every effect
happened exactly once. The exit code is that check.

The account is halfway through a move from snapshot to thin events (docs/thin-migration.md):
beside the snapshot endpoint, a thin event destination made with Stripe's official SDK sends
the same changes as thin notifications to the same ichido, and each pair of twins applies once.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import orjson
import stripe
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ichido import signature
from ichido.config import Settings
from ichido.shop.app import create_shop
from ichido.shop.service import Shop
from ichido.shop.settings import ShopSettings
from ichido.emulator import Emulator, EmulatorServer
from ichido.serving import ThreadedServer
from ichido.testing import free_port
from ichido.thin.reader import Reader

API_KEY = "sk_test_ichido_demo"
# the changes the shop's handlers act on, which the thin destination also sends
SHOP_TYPES = ("payment_intent.succeeded", "payment_intent.payment_failed",
              "payment_intent.canceled", "charge.refunded", "refund.updated",
              "invoice.paid", "customer.subscription.deleted")


@dataclass
class Expectation:
    """What one order must end as, and which effects it must have had exactly once."""

    label: str
    short: str
    status: str
    entitlement: str | None = None  # None, "granted" or "revoked"
    shipment: str | None = None
    mails: tuple[str, ...] = ()
    refunds: int = 0
    order_id: str = ""
    got: dict[str, Any] = field(default_factory=dict)


class Demo:
    def __init__(self, workdir: Path, duplicate_rate: float, reorder_window: float,
                 console: Console) -> None:
        self.console = console
        self.secret = f"whsec_demo_{secrets.token_hex(16)}"
        service_port, emulator_port = free_port(), free_port()
        self.emulator_url = f"http://127.0.0.1:{emulator_port}"
        webhook_url = f"http://127.0.0.1:{service_port}/webhooks/stripe"
        self.emulator = Emulator(
            webhook_urls=[webhook_url], webhook_secrets=[self.secret], api_key=API_KEY,
            duplicate_rate=duplicate_rate, reorder_window=reorder_window, time_scale=0.001,
            seed=1)
        self.emulator_server = EmulatorServer(self.emulator, port=emulator_port).start()
        self.sdk = stripe.StripeClient(API_KEY, base_addresses={"api": self.emulator_url},
                                       max_network_retries=0)
        settings = Settings(
            database_url=f"sqlite:///{workdir / 'ichido.db'}",
            webhook_secrets=(self.secret, self.thin_destination(webhook_url)),
            poll_interval_seconds=0.05, retry_base_seconds=0.2, retry_cap_seconds=2.0)
        shop_settings = ShopSettings(stripe_api_key=API_KEY, stripe_api_base=self.emulator_url,
                                     mail_dir=str(workdir / "mail"))
        self.shop: Shop = create_shop(settings, shop_settings, workers=2)
        # thin events are completed by reading the local Stripe, through the same SDK
        self.shop.app.reader = Reader(settings.fetch_rate, client=self.sdk)
        self.service = ThreadedServer(self.shop.app, port=service_port)
        self.mail_dir = workdir / "mail"
        self.http = httpx.Client(timeout=30)
        self.subscription_id = ""
        self.stripe_http = httpx.Client(base_url=self.emulator_url, timeout=30,
                                        headers={"Authorization": f"Bearer {API_KEY}"})

    def thin_destination(self, url: str) -> str:
        """The migration's first step: a thin event destination beside the snapshot endpoint,
        enabled for the thin names of the types the shop handles; returns its secret."""
        types = [f"v1.{t}" for t in SHOP_TYPES]
        made = self.sdk.v2.core.event_destinations.create({
            "name": "ichido (thin)", "type": "webhook_endpoint", "event_payload": "thin",
            "enabled_events": types, "webhook_endpoint": {"url": url},
            "include": ["webhook_endpoint.signing_secret"]})
        return str(made.webhook_endpoint.signing_secret)

    # -- the story ---------------------------------------------------------------------------

    def order(self, **body: Any) -> dict[str, Any]:
        response = self.http.post(f"{self.service.url}/orders", json=body,
                                  headers={"Idempotency-Key": secrets.token_hex(8)})
        if response.status_code >= 400:
            raise RuntimeError(f"order refused: {response.text}")
        return response.json()

    def control(self, path: str, **form: Any) -> dict[str, Any]:
        response = self.stripe_http.post(f"/_emulator/{path}", data=form)
        response.raise_for_status()
        return response.json()

    def refund(self, order_id: str, amount: int | None = None) -> None:
        body = {} if amount is None else {"amount": amount}
        self.http.post(f"{self.service.url}/orders/{order_id}/refund", json=body).raise_for_status()

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def status_of(self, order_id: str) -> dict[str, Any]:
        return self.http.get(f"{self.service.url}/orders/{order_id}").json()

    def play(self, step: Callable[[str], None]) -> list[Expectation]:
        ticket = Expectation("video ticket ¥1,500, konbini at Seicomart, then refunded by bank "
                             "transfer", "ticket, konbini", "refunded", entitlement="revoked",
                             mails=("paid", "refund-1", "voucher"), refunds=1)
        shirt = Expectation("T-shirt ¥3,500 by card, refunded before shipping", "T-shirt, card",
                            "refunded", shipment="canceled",
                            mails=("paid", "refund-1", "warehouse-cancel", "warehouse-ship"), refunds=1)
        stand = Expectation("live-commerce stand ¥2,000 by card", "live item, card", "paid",
                            shipment="ready_to_ship", mails=("paid", "warehouse-ship"))
        lapsed = Expectation("video ticket ¥1,500, konbini voucher left to expire",
                             "ticket, konbini", "expired", mails=("voucher",))

        premiere = Expectation("video ticket ¥300: konbini refused by the fee guard, paid with "
                               "PayPay", "¥300 ticket, PayPay", "paid", entitlement="granted",
                               mails=("paid",))
        transfer = Expectation("video ticket ¥1,500 by bank transfer, paid in two parts",
                               "ticket, bank transfer", "paid", entitlement="granted",
                               mails=("owed-500", "paid", "transfer"))
        self.japan_story(step, premiere, transfer)
        step("a fan buys a ¥1,500 live ticket with konbini: voucher issued")
        ticket.order_id = self.order(product="live-2026-12", payment_method="konbini",
                                     email="fan@example.com")["id"]
        pi = self.status_of(ticket.order_id)["payment_intent"]
        step("the fan pays the voucher in cash at Seicomart")
        self.control(f"payment_intents/{pi}/pay", store="seicomart")
        step("a shopper buys a tour T-shirt by card")
        shirt.order_id = self.order(product="tour-tshirt", payment_method="card",
                                    email="shopper@example.com", payment_method_id="pm_card_visa")["id"]
        stand.order_id = self.order(product="live-acrylic-stand", payment_method="card",
                                    email="viewer@example.com")["id"]
        step("another fan takes a konbini voucher and never pays: it expires")
        lapsed.order_id = self.order(product="live-2026-12", payment_method="konbini",
                                     email="late@example.com")["id"]
        self.control(f"payment_intents/{self.status_of(lapsed.order_id)['payment_intent']}/expire")
        step("waiting for the payments to settle through the webhooks")
        self.wait_for("payments", lambda: self.status_of(ticket.order_id)["status"] == "paid"
                      and self.status_of(shirt.order_id)["status"] == "paid")
        step("the seen tier is wiped (a restart) and Stripe resends five events")
        self.resend_after_flush(5)
        step("the T-shirt is refunded by card before it ships")
        self.refund(shirt.order_id)
        step("the ticket is refunded: konbini refunds wait for the buyer's bank details")
        self.refund(ticket.order_id)
        self.wait_for("the konbini refund to ask for bank details", lambda: any(
            r["status"] == "requires_action" for r in self.status_of(ticket.order_id)["refunds"]))
        refund_id = self.status_of(ticket.order_id)["refunds"][0]["id"]
        step("the buyer sends bank details; Stripe pays the refund out")
        self.control(f"refunds/{refund_id}/bank_details", account_number="0001234")
        self.subscription_story(step)
        step("letting every delivery, retry and duplicate land")
        self.settle()
        return [ticket, shirt, stand, lapsed, premiere, transfer]

    def japan_story(self, step: Callable[[str], None], premiere: Expectation,
                    transfer: Expectation) -> None:
        """PayPay where konbini's fee is too high, and a bank transfer paid in two parts."""
        refused = self.http.post(f"{self.service.url}/orders", json={
            "product": "mv-premiere-300", "payment_method": "konbini",
            "email": "premiere@example.com"}).json()["error"]
        step(f"a ¥300 premiere ticket by konbini is refused: {refused['message']};"
             f" the fee guard suggests {refused['suggested_method']}")
        premiere.order_id = self.order(product="mv-premiere-300",
                                       payment_method=refused["suggested_method"],
                                       email="premiere@example.com")["id"]
        pi = self.status_of(premiere.order_id)["payment_intent"]
        step("the fan follows the redirect and authorises the payment in PayPay")
        self.control(f"payment_intents/{pi}/authorize", result="succeed")
        step("another fan buys a ¥1,500 ticket by bank transfer: the account is mailed")
        transfer.order_id = self.order(product="live-2026-12", payment_method="customer_balance",
                                       email="furikomi@example.com")["id"]
        customer = self.stripe_http.get(
            f"/v1/payment_intents/{self.status_of(transfer.order_id)['payment_intent']}").json()[
            "customer"]
        step("the fan transfers ¥1,000: the shop mails that ¥500 is still owed")
        self.fund(customer, 1000)
        self.wait_for("the partial transfer", lambda: (
            self.status_of(transfer.order_id)["transfer"] or {}).get("amount_remaining") == 500)
        step("the fan transfers the remaining ¥500: the ticket is granted")
        self.fund(customer, 500)

    def fund(self, customer: str, amount: int) -> None:
        """The buyer's bank transfer, by Stripe's test helper."""
        self.stripe_http.post(f"/v1/test_helpers/customers/{customer}/fund_cash_balance",
                              data={"amount": amount, "currency": "jpy"}).raise_for_status()

    def subscription(self) -> dict[str, Any]:
        return self.http.get(f"{self.service.url}/subscriptions/{self.subscription_id}").json()

    def subscription_story(self, step: Callable[[str], None]) -> None:
        """Streaming: a trial, the first month charged when it ends, then a cancellation."""
        step("a viewer subscribes to the monthly streaming pass by card (7-day trial)")
        response = self.http.post(f"{self.service.url}/subscriptions", json={
            "plan": "stream-monthly", "payment_method": "card", "email": "viewer@example.com"},
            headers={"Idempotency-Key": secrets.token_hex(8)})
        if response.status_code >= 400:
            raise RuntimeError(f"subscription refused: {response.text}")
        self.subscription_id = response.json()["id"]
        stripe_id = response.json()["stripe_subscription"]
        self.wait_for("access to the stream", lambda: self.subscription()["entitlement"])
        step("the trial ends (Stripe's clock moves a week): the first month is charged")
        period_end = self.stripe_http.get(f"/v1/subscriptions/{stripe_id}").json()[
            "items"]["data"][0]["current_period_end"]
        now = self.control("clock/advance", seconds=0)["now"]
        self.control("clock/advance", seconds=period_end - now + 2 * 3600)
        self.wait_for("the first month's invoice paid", lambda: [
            i["status"] for i in self.subscription()["invoices"]] == ["paid", "paid"])
        step("the viewer cancels: access to the stream ends")
        self.stripe_http.delete(f"/v1/subscriptions/{stripe_id}").raise_for_status()
        self.wait_for("access revoked", lambda: (self.subscription()["entitlement"] or {}).get(
            "revoked_at"))

    def resend_after_flush(self, count: int) -> None:
        """Like the Dashboard's "resend": old events again, after the fast tier forgot them.
        Only the durable tier can catch these now (I3, docs/invariants.md)."""
        self.settle()  # everything in flight lands first, so these ids are all stored
        self.shop.app.seen.clear()
        events = self.stripe_http.get("/v1/events", params={"limit": count}).json()["data"]
        for event in events:
            body = orjson.dumps(event)
            self.http.post(f"{self.service.url}/webhooks/stripe", content=body, headers={
                "Stripe-Signature": signature.sign(body, [self.secret]),
                "Content-Type": "application/json"}).raise_for_status()

    def settle(self) -> None:
        """Quiet means: the emulator has nothing in flight and the service nothing to do."""
        inbox = self.shop.app.inbox
        quiet_since = None
        while True:
            self.emulator.settle(timeout=60)
            stats = inbox.stats()
            outbox = self.shop.outbox.counts()
            busy = (stats["pending"] + stats["processing"] + stats["retrying"]
                    + outbox.get("pending", 0))
            if busy or self.emulator.sender.busy():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 1.0:
                return
            time.sleep(0.05)

    # -- the verdict -------------------------------------------------------------------------

    def judge(self, expectations: list[Expectation]) -> list[str]:
        """Every way an effect could have happened twice, or not at all."""
        problems = []
        mail_files = Counter(path.name.split("--")[0] for path in self.mail_dir.glob("*.eml"))
        payment_intents = Counter(
            pi["metadata"].get("order_id") for pi in self.stripe_http.get(
                "/v1/payment_intents", params={"limit": 100}).json()["data"])
        for exp in expectations:
            order = self.status_of(exp.order_id)
            exp.got = order
            mails = sorted(p.name.split("--")[1].removesuffix(".eml")
                           for p in self.mail_dir.glob(f"{exp.order_id}--*.eml"))
            entitlement = order["entitlement"]
            ent = None if entitlement is None else ("revoked" if entitlement["revoked_at"]
                                                    else "granted")
            checks = {"status": (order["status"], exp.status),
                      "entitlement": (ent, exp.entitlement),
                      "shipment": ((order["shipment"] or {}).get("status"), exp.shipment),
                      "mails": (tuple(mails), tuple(sorted(exp.mails))),
                      "mail count": (mail_files[exp.order_id], len(exp.mails)),
                      "refunds": (len(order["refunds"]), exp.refunds),
                      "PaymentIntents at Stripe": (payment_intents[exp.order_id], 1)}
            problems += [f"{exp.label}: {name} is {got!r}, expected {want!r}"
                         for name, (got, want) in checks.items() if got != want]
        subscription = self.subscription()
        access = self.shop.app.database.reading
        with access() as tx:
            grants = tx.execute("SELECT count(*) FROM shop_subscription_access").fetchone()[0]
        got = (subscription["status"], bool((subscription["entitlement"] or {}).get("revoked_at")),
               [(i["amount"], i["status"]) for i in subscription["invoices"]], grants)
        want = ("canceled", True, [(0, "paid"), (980, "paid")], 1)
        if got != want:
            problems.append(f"streaming subscription: {got!r}, expected {want!r}")
        stats = self.shop.app.inbox.stats()
        if stats["dead"]:
            problems.append(f"{stats['dead']} event(s) dead-lettered")
        if stats["received"] != (stats["unique"] + stats["duplicates_cache"]
                                 + stats["duplicates_durable"]):
            problems.append(f"counts do not add up: {stats}")
        if not stats["duplicates_twin"]:
            problems.append("no twin collapsed: the thin destination sent nothing ichido took")
        return problems

    def thin_stored(self) -> int:
        from ichido.inbox import EventFilter, sql_inbox

        return sql_inbox(self.shop.app.inbox, "ichido demo").count(EventFilter(shape="thin"))

    def report(self, expectations: list[Expectation], problems: list[str]) -> None:
        stats = self.shop.app.inbox.stats()
        sent = self.emulator.stats()
        numbers = Table("what", "count", title="deliveries and effects")
        rows = [("webhook deliveries sent (retries and duplicates included)",
                 sent["attempts"]),
                ("duplicate copies sent by the chaos knob", sent["duplicates_sent"]),
                ("resent by the demo after wiping the seen tier", 5),
                ("verified deliveries received", stats["received"]),
                ("unique events stored", stats["unique"]),
                ("duplicates caught by the seen tier", stats["duplicates_cache"]),
                ("duplicates caught by the durable tier", stats["duplicates_durable"]),
                ("thin events received beside their snapshots (migration)",
                 self.thin_stored()),
                ("twins collapsed: one shape applied, the other not", stats["duplicates_twin"]),
                ("events processed (ignored types included)", stats["processed"]),
                ("mails and notices sent", len(list(self.mail_dir.glob("*.eml")))),
                ("dead letters", stats["dead"])]
        for name, value in rows:
            numbers.add_row(name, str(value))
        self.console.print(numbers)
        final = Table("order", "what", "status", "entitlement", "shipment", "refunds",
                      title="each order's final state")
        for exp in expectations:
            got = exp.got
            ent = got.get("entitlement")
            final.add_row(exp.order_id[:12] + "…", exp.short, got.get("status", "?"),
                          "-" if ent is None else ("revoked" if ent["revoked_at"] else "granted"),
                          (got.get("shipment") or {}).get("status", "-"),
                          ", ".join(f"¥{r['amount']:,} {r['status']}" for r in got.get("refunds", []))
                          or "-")
        self.console.print(final)
        subscription = self.subscription()
        self.console.print(f"streaming subscription {subscription['id'][:12]}…: "
                           f"{subscription['status']}, invoices "
                           + ", ".join(f"¥{i['amount']:,} {i['status']}"
                                       for i in subscription["invoices"])
                           + (", access granted then revoked"
                              if (subscription["entitlement"] or {}).get("revoked_at") else ""))
        for problem in problems:
            self.console.print(f"[red]✗ {problem}[/red]")
        if not problems:
            self.console.print("[green]✓ every effect happened exactly once[/green]")


class Progress:
    """The live display: the story so far, and the pipeline's counts as they move."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.steps: list[str] = []

    def __rich__(self) -> Table:
        grid = Table.grid(padding=(0, 1))
        for index, text in enumerate(self.steps):
            mark = "[cyan]…[/cyan]" if index == len(self.steps) - 1 else "[green]✓[/green]"
            grid.add_row(mark, text)
        stats = self.demo.shop.app.inbox.stats()
        sent = self.demo.emulator.stats()
        grid.add_row("", f"[dim]deliveries sent {sent.get('attempts', 0)} · received "
                         f"{stats['received']} · unique {stats['unique']} · duplicates caught "
                         f"{stats['duplicates_cache']} cache / {stats['duplicates_durable']} "
                         f"durable · processed {stats['processed']}[/dim]")
        return grid


def run_demo(duplicate_rate: float = 0.3, reorder_window: float = 0.3,
             console: Console | None = None) -> int:
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="ichido-demo-") as tmp:
        demo = Demo(Path(tmp), duplicate_rate, reorder_window, console)
        console.print(f"ichido demo: SQLite store in {tmp}, {duplicate_rate:.0%} duplicate "
                      f"deliveries, events of one object reordered within {reorder_window:g} s")
        try:
            with demo.service:
                progress = Progress(demo)
                with Live(progress, console=console, refresh_per_second=8):
                    expectations = demo.play(progress.steps.append)
                problems = demo.judge(expectations)
                demo.report(expectations, problems)
        finally:
            demo.emulator_server.stop()  # started with the demo, for its thin destination
        return 1 if problems else 0
