"""One local Stripe: its store, its API behaviour and its webhook sender, wired together.

Built in-process by tests (``Emulator(...)`` then ``EmulatorServer(emulator).start()``) and by
``ichido emulator`` on the command line. Everything Stripe would do on its own time runs on the
emulator clock (``advance``); webhook retries run on real time multiplied by ``time_scale``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from ichido.emulator import endpoints, fees, shapes, versions  # shapes: registers reshapers
from ichido.emulator.captures import Captures
from ichido.emulator.catalog import Catalog
from ichido.emulator.catalog_edits import CatalogEdits
from ichido.emulator.checkout import Checkout
from ichido.emulator.disputes import Disputes
from ichido.emulator.event_destinations import EventDestinations
from ichido.emulator.idempotency import IdempotencyKeys
from ichido.emulator.manual_invoices import ManualInvoices
from ichido.emulator.payment_methods import PaymentMethods
from ichido.emulator.payment_pages import PaymentPages
from ichido.emulator.invoices import Invoices
from ichido.emulator.bank_transfer import BankTransfers
from ichido.emulator.cash_balance import CashBalances
from ichido.emulator.payments import Payments
from ichido.emulator.paypay import PayPay
from ichido.emulator.refunds import Refunds
from ichido.emulator.sepa import Sepa
from ichido.emulator.setup_intents import SetupIntents
from ichido.emulator.sources import Sources
from ichido.emulator.state import Store
from ichido.emulator.subscription_schedules import SubscriptionSchedules
from ichido.emulator.subscriptions import Subscriptions
from ichido.emulator.test_clocks import TestClocks
from ichido.emulator.thin_events import ThinEvents
from ichido.emulator.endpoints import LIVE_RETRY_DELAYS, Endpoint
from ichido.emulator.webhooks import DEFAULT_CONCURRENCY, Chaos, WebhookSender


class Emulator:
    """Configuration in, behaviour out. Thread-safe: the server runs it on its own loop."""

    def __init__(self, *, webhook_urls: Sequence[str] = (), webhook_secrets: Sequence[str] = (),
                 endpoints: Sequence[Endpoint] = (), api_key: str | None = None,
                 duplicate_rate: float = 0.0, reorder_window: float = 0.0, delay: float = 0.0,
                 fail_rate: float = 0.0, time_scale: float = 1.0, timeout: float = 10.0,
                 retry_delays: Sequence[float] = LIVE_RETRY_DELAYS, api_delay: float = 0.0,
                 webhook_concurrency: int = DEFAULT_CONCURRENCY, seed: int | None = None,
                 api_version: str = versions.DEFAULT,
                 pricing: fees.Pricing | Mapping[str, Any] | str | os.PathLike[str] | None = None,
                 generation_failure_rate: float = 0.0, generation_alert_after: float = 300.0
                 ) -> None:
        """``webhook_urls`` all get every event signed with every one of ``webhook_secrets``
        (two secrets = a secret roll); ``endpoints`` gives each URL its own secrets.
        ``api_key``: the one key accepted (default: any ``sk_test_…``). ``api_delay``: seconds
        each API request spends executing, so that concurrent requests overlap.
        ``webhook_concurrency``: webhook requests on the wire at once (the rest wait their turn).
        ``pricing``: the fee rule per method (see ``fees``): a TOML path in the pricing format
        the shop reads too, a mapping, or None for the emulator's own ``pricing.toml``; the
        methods a file names replace the packaged rules, the others keep them.
        ``api_version``: the account's default API version, for requests without
        ``Stripe-Version`` and for events (``versions.supported()`` lists the choices).
        ``generation_failure_rate``: share of changes whose events Stripe fails to generate
        (none stored, listed or sent); ``generation_alert_after`` seconds later the thin
        health alert names each (``thin_events``)."""
        if webhook_urls and not webhook_secrets:
            raise ValueError("webhook URLs need at least one signing secret (whsec_…)")
        for rate in (duplicate_rate, fail_rate):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rates are between 0 and 1, got {rate}")
        all_endpoints = [*endpoints, *(Endpoint(url, tuple(webhook_secrets))
                                       for url in webhook_urls)]
        self.api_key, self.api_delay = api_key, api_delay
        self.rate_limited = 0  # the next N API requests get a 429 (a control sets it)
        # While set and closed, API requests wait here once begun: tests make two overlap
        # without depending on timing.
        self.api_gate: threading.Event | None = None
        self.started = int(time.time())
        self.store = Store(api_version=versions.checked(api_version))
        self.pricing = fees.load(pricing)
        self.payments = Payments(self.store, self.pricing)
        self.refunds = Refunds(self.store)
        self.catalog = Catalog(self.store)
        self.invoices = Invoices(self.store, self.payments, self.catalog)
        self.subscriptions = Subscriptions(self.store, self.catalog, self.invoices)
        self.checkout = Checkout(self.store, self.payments, self.catalog)
        # What Stripe's own tools (the CLI's triggers, stripe-node) drive beyond the above.
        self.captures = Captures(self.store, self.pricing, self.payments.tell)
        self.payments.delayed["sepa_debit"] = Sepa(self.store, self.pricing,
                                                   self.payments.tell).debit
        # Japanese methods (issue 24): PayPay's redirect, bank transfers into the cash balance.
        self.paypay = PayPay(self.store, self.pricing, self.refunds, self.payments.tell)
        self.payments.delayed["paypay"] = self.paypay.redirect
        self.cash_balances = CashBalances(self.store)
        self.bank_transfers = BankTransfers(self.store, self.pricing, self.cash_balances,
                                            self.refunds, self.payments.tell)
        self.payments.delayed["customer_balance"] = self.bank_transfers.start
        self.edits = CatalogEdits(self.store)
        self.sources = Sources(self.store)
        self.catalog.customer_hooks += [self.sources.on_customer]
        self.test_clocks = TestClocks(self.store)
        self.payment_methods = PaymentMethods(self.store)
        self.setup_intents = SetupIntents(self.store, self.catalog)
        self.disputes = Disputes(self.store, self.payments)
        self.schedules = SubscriptionSchedules(self.store, self.subscriptions,
                                               self.test_clocks)
        self.payment_pages = PaymentPages(self.store, self.checkout)
        self.manual_invoices = ManualInvoices(self.store, self.invoices, self.payments,
                                              self.catalog)
        self.keys = IdempotencyKeys(self.store.clock.now)
        self.thin = ThinEvents(self.store, generation_failure_rate=generation_failure_rate,
                               alert_after=generation_alert_after, seed=seed)
        self.sender = WebhookSender(
            all_endpoints, self.thin.render_or(self.store.render_event),
            self.store.mark_delivered,
            chaos=Chaos(duplicate_rate, reorder_window, delay, fail_rate),
            time_scale=time_scale, timeout=timeout, retry_delays=retry_delays,
            concurrency=webhook_concurrency, seed=seed, now=self.store.clock.now)
        self.store.endpoints_enabled = self.sender.enabled
        self.thin.attach(self.sender)
        self.destinations = EventDestinations(self.thin, self.sender)
        self.store.listeners.append(self.sender.enqueue)

    def on_event(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(event)`` for every new event (under the store's lock: be quick)."""
        self.store.listeners.append(listener)

    def advance(self, seconds: float) -> int:
        """Move the emulator clock forward and fire what became due; returns how many fired.
        Webhook retries that became due go too (past 72 h, Stripe's retries give up)."""
        fired = self.store.advance(seconds)
        self.sender.clock_moved()
        return fired

    def endpoint(self, ref: str, *, enabled: bool | None = None,
                 reachable: bool | None = None) -> dict[str, Any]:
        """Disable/enable (Stripe's endpoint status) or take down/bring up (the receiver's
        reachability) one webhook endpoint, by id (``we_emulator0``) or URL; returns its state."""
        with self.store.lock:
            state = endpoints.find(self.sender.endpoints, ref)
            if enabled is not None:
                state.enabled = enabled
            if reachable is not None:
                state.reachable = reachable
            return state.describe()

    def rate_limit(self, requests: int) -> None:
        """The next ``requests`` API requests (``/v1/…``) answer 429, as Stripe's limiter."""
        with self.store.lock:
            self.rate_limited = requests

    def take_rate_limit(self) -> bool:
        with self.store.lock:
            if self.rate_limited <= 0:
                return False
            self.rate_limited -= 1
            return True

    def webhook_endpoints(self) -> list[dict[str, Any]]:
        with self.store.lock:
            return [state.describe() for state in self.sender.endpoints]

    def now(self) -> int:
        return self.store.clock.now()

    def events(self) -> list[dict[str, Any]]:
        """Every live event, oldest first, each as its ``api_version`` renders it (a copy of
        the log, for tests and the demo)."""
        with self.store.lock:
            return [versions.render(e, versions.Version(e["api_version"]))
                    for e in reversed(self.store.live_events())]

    def stats(self) -> dict[str, Any]:
        """Deliveries attempted, retries, duplicates sent, per-endpoint successes/failures."""
        with self.store.lock:
            events = self.store.objects["event"].values()
            pending = sum(1 for e in events if e["pending_webhooks"])
        return {**self.sender.stats(), "events_created": len(self.store.objects["event"]),
                "events_pending_delivery": pending,
                "thin_events_created": len(self.thin.events),
                "events_not_generated": self.thin.not_generated}

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is due now and no delivery is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.store.lock:
                self.store.fire_due()
            if not self.sender.busy():
                return True
            time.sleep(0.02)
        return False
