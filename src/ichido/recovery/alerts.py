"""Alerts: the operator hears of trouble through the outbox, once per storm.

Conditions: the first failure of an event type, a dead letter, a backlog older than
``alert_backlog_seconds``, the reconciler finding missed events, a rising share of refused
signatures (a secret rolled on one side only), and Stripe's word that it failed to generate an
event (``event_generation_failure``, raised by the worker as it applies the recovery). Each is written as an outbox row (kind
``alert``) in a transaction, so it is sent after the commit and never twice; the sender posts
Slack-compatible JSON (``{"text": …}``) to ``alert_webhook_url`` and logs it.

Rate limit: one message per condition per ``alert_window_seconds``. The outbox key is the
condition and the window's number, so a thousand dead letters in one window make one row (one
message); ``ichido_alerts.count`` keeps how many there were, and the message says so as far as
it knows when it is sent.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import httpx
import orjson

from ichido.db.base import Database, Transaction
from ichido.errors import ReasonCode
from ichido.inbox.seams import Backlog
from ichido.metrics import METRICS
from ichido.outbox import enqueue
from ichido.recovery.reconcile import ReconcileReport, count
from ichido.recovery.settings import RecoverySettings

log = logging.getLogger("ichido.alerts")

SIGNATURE_CODES: tuple[ReasonCode, ...] = ("bad_signature", "stale_timestamp",
                                           "missing_signature")


class Alerts:
    """Raises alerts (``raise_alert``) and watches the store for the conditions (``check``)."""

    def __init__(self, inbox: Backlog, settings: RecoverySettings, *,
                 clock: Callable[[], float] = time.time) -> None:
        """``inbox``: the events (it knows where they wait before the queue has them, such as
        SQLite's intake); its database holds the outbox and the alert tables."""
        self.inbox, self.database = inbox, inbox.database
        self.settings, self.clock = settings, clock
        self._signatures = signature_counts()  # (refused, received) at the last look

    def raise_alert(self, tx: Transaction, kind: str, subject: str, text: str) -> bool:
        """Record one occurrence; True when it opened a new window (a message will go)."""
        return raise_alert(tx, kind, subject, text, window=self.settings.alert_window_seconds,
                           now=self.clock())

    # -- conditions raised by others ---------------------------------------------------------

    def missed_events(self, report: ReconcileReport) -> None:
        """The reconciler's ``on_found``: events Stripe had and the inbox did not."""
        with self.database.transaction() as tx:
            self.raise_alert(tx, "reconciler_found", report.account,
                             f"reconciler stored {report.reconciled} event(s) that webhooks never"
                             f" delivered (account {report.account}); first: "
                             f"{', '.join(report.found[:5])}")

    # -- conditions watched ------------------------------------------------------------------

    def check(self) -> int:
        """Look once at failures, dead letters, the backlog and signatures; return how many
        alerts opened a window."""
        opened = 0
        now = self.clock()
        oldest = self.inbox.oldest_pending()
        with self.database.transaction() as tx:
            since = self._mark(tx, "failures_seen_at")
            rows = tx.execute(
                "SELECT f.failed_at, e.id, e.type, e.status FROM ichido_failures f JOIN"
                " ichido_events e ON e.id = f.event_id WHERE f.failed_at > ?"
                " ORDER BY f.failed_at", (since,)).fetchall()
            dead_seen: set[str] = set()
            for failed_at, event_id, event_type, status in rows:
                since = max(since, float(failed_at))
                if self._first(tx, f"failing_type:{event_type}", now):
                    opened += self.raise_alert(tx, "first_failure", event_type,
                                               f"first failure of {event_type} ({event_id})")
                if status == "dead" and event_id not in dead_seen:
                    dead_seen.add(event_id)
                    opened += self.raise_alert(tx, "dead_letter", event_id,
                                               f"{event_id} ({event_type}) is dead-lettered"
                                               " after every attempt: `ichido dlq list`")
            self._set_mark(tx, "failures_seen_at", since)
            if oldest is not None and now - float(oldest) > self.settings.alert_backlog_seconds:
                opened += self.raise_alert(tx, "backlog", "pending",
                                           f"the oldest pending event waits for"
                                           f" {now - float(oldest):.0f} s: are the workers up?")
            opened += self._signature_check(tx)
        return opened

    def _signature_check(self, tx: Transaction) -> int:
        """The share of refused signatures since the last look (this process's receiver)."""
        refused, received = signature_counts()
        last, self._signatures = self._signatures, (refused, received)
        new_refused, new_received = refused - last[0], received - last[1]
        total = new_refused + new_received
        if new_refused < self.settings.alert_signature_min or \
                new_refused / total < self.settings.alert_signature_share:
            return 0
        return int(self.raise_alert(
            tx, "signature_failures", "receiver",
            f"{new_refused:.0f} of {total:.0f} deliveries refused for their signature since the"
            " last look: was the endpoint's secret rolled on one side only?"))

    def _mark(self, tx: Transaction, name: str) -> float:
        row = tx.execute("SELECT value FROM ichido_alert_marks WHERE name = ?",
                         (name,)).fetchone()
        return float(row[0]) if row else 0.0

    def _set_mark(self, tx: Transaction, name: str, value: float) -> None:
        tx.execute("INSERT INTO ichido_alert_marks (name, value) VALUES (?, ?) ON CONFLICT"
                   " (name) DO UPDATE SET value = excluded.value", (name, value))

    def _first(self, tx: Transaction, name: str, now: float) -> bool:
        return tx.execute("INSERT INTO ichido_alert_marks (name, value) VALUES (?, ?)"
                          " ON CONFLICT (name) DO NOTHING", (name, now)).rowcount == 1

    def run(self, stop: threading.Event) -> None:
        """The watcher's loop, one of the app's background loops."""
        from ichido.loops import poll

        poll("alerts", self._look, stop, None, self.settings.alert_interval_seconds)

    def _look(self) -> int:
        self.check()
        return 0  # then sleep for the interval, whatever was found


def raise_alert(tx: Transaction, kind: str, subject: str, text: str, *, window: float,
                now: float | None = None) -> bool:
    """Record one occurrence of ``kind`` in ``tx``; True when it opened a new window of
    ``window`` seconds (a message will go after the commit)."""
    now = time.time() if now is None else now
    key = f"alert:{kind}:{int(now // max(1.0, window))}"
    bumped = tx.execute("UPDATE ichido_alerts SET count = count + 1, last_at = ?"
                        " WHERE key = ?", (now, key)).rowcount
    if bumped:
        return False
    tx.execute("INSERT INTO ichido_alerts (key, kind, subject, first_at, last_at, count,"
               " detail) VALUES (?, ?, ?, ?, ?, 1, ?)", (key, kind, subject, now, now, text))
    enqueue(tx, "alert", key, {"kind": kind, "subject": subject, "text": text})
    count(tx, "alerts", 1)
    return True


def generation_failure(tx: Transaction, event_id: str, text: str) -> None:
    """The worker's word that Stripe failed to generate an event (``ichido.thin.recovered``):
    kind ``event_generation_failure``, in the transaction that applied the recovery, so the
    operator hears of each alert once (rate-limited per ``ICHIDO_ALERT_WINDOW``)."""
    global _window
    if _window is None:
        _window = RecoverySettings.from_env().alert_window_seconds
    raise_alert(tx, "event_generation_failure", event_id, text, window=_window)


_window: float | None = None


def signature_counts() -> tuple[float, float]:
    """(deliveries refused for their signature, deliveries verified) by this process so far."""
    refused = sum(METRICS.registry.get_sample_value(
        "ichido_webhooks_rejected_total", {"code": code}) or 0.0 for code in SIGNATURE_CODES)
    return refused, METRICS.registry.get_sample_value("ichido_webhooks_received_total") or 0.0


class AlertSender:
    """The outbox sender for ``alert`` rows: the log always, the webhook URL when set."""

    def __init__(self, settings: RecoverySettings, database: Callable[[], Database],
                 client: httpx.Client | None = None) -> None:
        self.settings, self.database = settings, database
        self.client = client or httpx.Client(timeout=10)

    def __call__(self, key: str, payload: dict[str, Any]) -> None:
        with self.database().reading() as tx:
            row = tx.execute("SELECT count FROM ichido_alerts WHERE key = ?", (key,)).fetchone()
        seen = int(row[0]) if row else 1
        more = f" (+{seen - 1} more like it in this window)" if seen > 1 else ""
        text = f"ichido alert [{payload['kind']}]: {payload['text']}{more}"
        log.warning("%s", text)
        url = self.settings.alert_webhook_url
        if url:  # a failure raises: the outbox retries with the same key
            self.client.post(url, content=orjson.dumps({"text": text}),
                             headers={"Content-Type": "application/json",
                                      "Idempotency-Key": key}).raise_for_status()
