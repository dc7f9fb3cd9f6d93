"""The outbox (I7): an effect that leaves the database is sent after the commit, with the row's
key as its idempotency key. A crash between the effect and the "processed" mark sends again with
the same key, and the receiving side (the mail directory, Stripe) still has one. A failing sender
is retried with backoff, then dead with its error, without holding back the others: the outbox
runs on the events' queue (claim, lease, retry, dead letter), with the same statuses.

Time is the queue's clock, moved by the test (no sleeping, no timing assertions).
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import httpx
import pytest

import ichido.outbox
import ichido.queue.base
import ichido.queue.table
from ichido.config import Settings
from ichido.shop import order_view
from ichido.shop.mail import MailSender
from ichido.shop.app import create_shop
from ichido.shop.order_request import OrderRequest
from ichido.shop.service import Shop
from ichido.shop.settings import ShopSettings
from ichido.emulator import Emulator, EmulatorServer
from ichido.db import Database, open_database
from ichido.outbox import OUTBOX_SCHEMA, OutboxDispatcher, enqueue
from tests.shop.conftest import KEY


class Crash(BaseException):
    """The process dies here: not an ``Exception``, so nothing records a failure; the row
    stays claimed, exactly as a ``kill -9`` leaves it."""


class Clock:
    """The queue's ``time`` module (its leases and backoffs), with a hand on it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    for module in (ichido.outbox, ichido.queue.table, ichido.queue.base):
        monkeypatch.setattr(module, "time", SimpleNamespace(time=fake.time))
    return fake


@pytest.fixture
def outbox_store(database_url: str) -> Iterator[Database]:
    store = open_database(Settings(database_url=database_url), migrate=True, steps=OUTBOX_SCHEMA)
    yield store
    store.close()


def row(store: Database, key: str) -> dict[str, Any]:
    with store.reading() as tx:
        found = tx.execute("SELECT status, attempts, next_attempt_at, last_error, finished_at"
                           " FROM ichido_outbox WHERE key = ?", (key,)).fetchone()
    assert found is not None, f"no outbox row {key}"
    return dict(zip(("status", "attempts", "next_attempt_at", "last_error", "finished_at"),
                    found))


def failures(store: Database, key: str) -> list[tuple[int, str]]:
    with store.reading() as tx:
        return [(attempt, error) for attempt, error in tx.execute(
            "SELECT attempt, error FROM ichido_outbox_failures WHERE key = ? ORDER BY attempt",
            (key,)).fetchall()]


MAIL = {"order_id": "ord_1", "to": "fan@example.com", "subject": "Payment received",
        "body": "We received ¥1,500 for order ord_1."}


def test_mail_written_before_a_crash_is_sent_again_with_the_same_key_and_lands_once(
        outbox_store: Database, clock: Clock, tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    sink = MailSender(ShopSettings(mail_dir=str(mail_dir)))
    keys: list[str] = []
    with outbox_store.transaction() as tx:
        assert enqueue(tx, "mail", "mail:ord_1:paid", MAIL)
    with outbox_store.transaction() as tx:  # a handler run again queues nothing more
        assert not enqueue(tx, "mail", "mail:ord_1:paid", MAIL)

    def send_then_die(key: str, payload: dict[str, Any]) -> None:
        keys.append(key)
        sink(key, payload)
        raise Crash

    first = OutboxDispatcher(lambda: outbox_store, {"mail": send_then_die}, lease_seconds=30)
    with pytest.raises(Crash):
        first.dispatch_once()
    written = (mail_dir / "ord_1--paid.eml").read_bytes()
    assert row(outbox_store, "mail:ord_1:paid")["status"] == "processing"  # claimed, leased

    def send(key: str, payload: dict[str, Any]) -> None:
        keys.append(key)
        sink(key, payload)

    restarted = OutboxDispatcher(lambda: outbox_store, {"mail": send}, lease_seconds=30)
    assert restarted.dispatch_once() == 0, "sent again while the first send may still run"
    clock.advance(31)  # the dead process's claim has run out
    assert restarted.dispatch_once() == 1
    assert keys == ["mail:ord_1:paid", "mail:ord_1:paid"]
    assert row(outbox_store, "mail:ord_1:paid")["status"] == "processed"
    assert sorted(p.name for p in mail_dir.iterdir()) == ["ord_1--paid.eml"]
    assert (mail_dir / "ord_1--paid.eml").read_bytes() == written
    assert restarted.drain() == 0 and len(keys) == 2


def test_failing_sender_is_retried_with_backoff_then_dead_with_its_error(
        outbox_store: Database, clock: Clock) -> None:
    attempts: list[float] = []
    delivered: list[str] = []

    def smtp_down(key: str, payload: dict[str, Any]) -> None:
        attempts.append(clock.time())
        raise ConnectionError(f"smtp.example.com refused, try {len(attempts)}")

    dispatcher = OutboxDispatcher(
        lambda: outbox_store, {"mail": smtp_down, "note": lambda k, p: delivered.append(k)},
        max_attempts=4, retry_base=10, retry_cap=25)
    with outbox_store.transaction() as tx:
        enqueue(tx, "mail", "mail:ord_2:voucher", {**MAIL, "order_id": "ord_2"})
        enqueue(tx, "note", "note:1", {})
    assert dispatcher.dispatch_once() == 2
    assert delivered == ["note:1"], "one failing message held back another"
    waits = []
    for attempt in range(1, 4):
        state = row(outbox_store, "mail:ord_2:voucher")
        assert (state["status"], state["attempts"]) == ("retrying", attempt)
        assert f"try {attempt}" in state["last_error"]
        wait = state["next_attempt_at"] - attempts[-1]
        ceiling = min(25, 10 * 2 ** (attempt - 1))
        assert ceiling / 2 - 0.5 <= wait <= ceiling + 0.5, (attempt, wait)
        waits.append(wait)
        assert dispatcher.dispatch_once() == 0, "retried before its backoff ran out"
        clock.advance(wait + 0.01)
        assert dispatcher.dispatch_once() == 1
    state = row(outbox_store, "mail:ord_2:voucher")
    assert (state["status"], state["attempts"], state["next_attempt_at"]) == ("dead", 4, None)
    assert "ConnectionError" in state["last_error"] and "try 4" in state["last_error"]
    history = failures(outbox_store, "mail:ord_2:voucher")
    assert [attempt for attempt, _ in history] == [1, 2, 3, 4]
    assert all(f"try {n}" in error for n, (_, error) in enumerate(history, 1))
    clock.advance(10_000)
    assert dispatcher.drain() == 0 and len(attempts) == 4, "a dead message was sent again"
    assert dispatcher.counts() == {"processed": 1, "dead": 1}


# -- Stripe refunds through a real Shop and the emulator ----------------------------------------

@pytest.fixture
def stripe_url() -> Iterator[str]:
    with EmulatorServer(Emulator(api_key=KEY)) as server:
        yield server.url


def make_shop(tmp_path: Path, stripe_url: str, **settings: Any) -> Shop:
    """The shop without worker threads: its outbox is driven by the test."""
    shop = create_shop(Settings(database_url=f"sqlite:///{tmp_path / 'shop.db'}", **settings),
                       ShopSettings(stripe_api_key=KEY, stripe_api_base=stripe_url,
                                    mail_dir=str(tmp_path / "mail")), workers=0)
    shop.app.migrate()
    shop.app.start()
    return shop


def refunds_at_stripe(stripe_url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{stripe_url}/v1/refunds", headers={"Authorization": f"Bearer {KEY}"}
                     ).json()["data"]


def crash_after_stripe_call(shop: Shop, keys: list[str]) -> None:
    """Stripe makes the refund, then the process dies before the shop hears of it."""
    refunds = shop.stripe.v1.refunds
    real = refunds.create
    crashed = []

    def create(*args: Any, **kwargs: Any) -> Any:
        keys.append(kwargs["options"]["idempotency_key"])
        refund = real(*args, **kwargs)
        if not crashed:
            crashed.append(True)
            raise Crash
        return refund

    refunds.create = create  # type: ignore[method-assign]


def test_refund_made_at_stripe_before_a_crash_is_asked_again_with_its_key_and_stripe_has_one(
        tmp_path: Path, stripe_url: str, clock: Clock) -> None:
    shop = make_shop(tmp_path, stripe_url)
    status, order = shop.place_order(
        OrderRequest("live-2026-12", 1, "card", "fan@example.com"), None)
    assert status == 200 and order["status"] == "paid"
    request = shop.request_refund(order["id"], None, None)
    keys: list[str] = []
    crash_after_stripe_call(shop, keys)
    with pytest.raises(Crash):
        shop.outbox.drain()
    made = refunds_at_stripe(stripe_url)
    assert len(made) == 1 and made[0]["amount"] == 1500

    clock.advance(3600)  # long after any lease: the restarted process sends it again
    shop.outbox.drain()
    assert keys == [f"ichido-refund-{request['id']}"] * 2
    assert [r["id"] for r in refunds_at_stripe(stripe_url)] == [made[0]["id"]]
    with shop.app.database.reading() as tx:
        assert tx.execute("SELECT refund_id FROM shop_refund_requests WHERE id = ?",
                          (request["id"],)).fetchall() == [(made[0]["id"],)]
        assert tx.execute("SELECT status FROM ichido_outbox WHERE key = ?",
                          (keys[0],)).fetchall() == [("processed",)]
        shown = order_view.to_json(tx, order["id"])
    assert shown is not None and shown["status"] == "refunded"
    assert [(r["id"], r["amount"]) for r in shown["refunds"]] == [(made[0]["id"], 1500)]
    assert shown["entitlement"]["revoked_at"] is not None
    shop.app.close()


def test_outbox_row_of_a_crashed_process_is_resent_once_the_configured_lease_ends(
        tmp_path: Path, stripe_url: str, clock: Clock) -> None:
    shop = make_shop(tmp_path, stripe_url, lease_seconds=2.0)
    status, order = shop.place_order(
        OrderRequest("live-2026-12", 1, "card", "fan@example.com"), None)
    shop.request_refund(order["id"], 700, None)
    keys: list[str] = []
    crash_after_stripe_call(shop, keys)
    with pytest.raises(Crash):
        shop.outbox.drain()
    clock.advance(3)  # past ICHIDO_LEASE=2s
    try:
        assert shop.outbox.drain() >= 1, "the crashed send waits for a lease nobody configured"
        assert len(keys) == 2 and len(refunds_at_stripe(stripe_url)) == 1
    finally:
        shop.app.close()
