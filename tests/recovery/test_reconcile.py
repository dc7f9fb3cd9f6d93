"""The reconciler against the emulator's Events API, over HTTP, through the official SDK."""

from __future__ import annotations

from typing import Iterator

import pytest
import stripe

from ichido.config import Settings
from ichido.event import parse_delivery
from ichido.inbox import EventFilter, Inbox
from ichido.recovery.reconcile import Reconciler, recovery_counts
from ichido.schema import open_inbox
from tests.recovery.conftest import DAY, KEY
from tests.support import make_event


@pytest.fixture
def inbox(database_url: str) -> Iterator[Inbox]:
    store = open_inbox(Settings(database_url=database_url), migrate=True)
    yield store
    store.close()


def pay(client: stripe.StripeClient, n: int) -> None:
    for _ in range(n):
        client.v1.payment_intents.create(params={
            "amount": 1500, "currency": "jpy", "confirm": True,
            "allowed_payment_method_types": ["card"], "payment_method": "pm_card_visa"})


def reconciler(inbox: Inbox, url: str, **options) -> Reconciler:
    client = stripe.StripeClient(KEY, base_addresses={"api": url})
    return Reconciler(inbox, client, **options)


def stored_ids(inbox: Inbox) -> set[str]:
    return {r.id for r in inbox.page(limit=10_000, bodies=False)}


def test_every_listed_event_is_stored_once_and_counted(stripe_world, inbox: Inbox) -> None:
    emulator, proxy = stripe_world
    pay(stripe.StripeClient(KEY, base_addresses={"api": proxy.url}), 40)
    events = {e["id"] for e in emulator.events()}
    assert len(events) > 100  # more than one page
    report = reconciler(inbox, proxy.url).run()
    assert report.reconciled == len(events) and stored_ids(inbox) == events
    assert recovery_counts(inbox.database)["reconciled"] == len(events)
    again = reconciler(inbox, proxy.url).run()
    assert again.reconciled == 0 and again.known > 0
    assert recovery_counts(inbox.database)["reconciled"] == len(events)
    assert inbox.stats()["duplicates_durable"] == 0  # overlap is not a webhook duplicate


def test_rate_limits_back_off_and_retry_the_page(stripe_world, inbox: Inbox) -> None:
    emulator, proxy = stripe_world
    pay(stripe.StripeClient(KEY, base_addresses={"api": proxy.url}), 3)
    proxy.faults = [None, 429, 429]  # the newest-event probe passes, then two 429s
    waits: list[float] = []
    report = reconciler(inbox, proxy.url, sleep=waits.append).run()
    assert report.rate_limited == 2 and len(waits) == 2 and waits[1] > waits[0] / 2
    assert stored_ids(inbox) == {e["id"] for e in emulator.events()}


def test_a_crash_mid_walk_resumes_where_it_stopped(stripe_world, inbox: Inbox) -> None:
    emulator, proxy = stripe_world
    client = stripe.StripeClient(KEY, base_addresses={"api": proxy.url})
    pay(client, 30)
    emulator.advance(60)
    pay(client, 30)
    everything = {e["id"] for e in emulator.events()}
    proxy.faults = [None, None, 400]  # probe, page 1, then the process "dies"
    with pytest.raises(stripe.InvalidRequestError):
        reconciler(inbox, proxy.url).run()
    first = stored_ids(inbox)
    assert 0 < len(first) < len(everything)
    with inbox.database.reading() as tx:
        upper, reached = tx.execute("SELECT walk_upper, walk_reached FROM"
                                    " ichido_reconcile_cursors").fetchone()
    assert reached < upper  # it knows how far down it got
    proxy.seen.clear()
    report = reconciler(inbox, proxy.url).run()
    assert stored_ids(inbox) == everything
    assert report.reconciled == len(everything) - len(first)
    assert f"created%5Blte%5D={reached}" in proxy.seen[1]  # resumed, not restarted
    assert report.cursor == upper


def test_types_and_dry_run(stripe_world, inbox: Inbox) -> None:
    emulator, proxy = stripe_world
    pay(stripe.StripeClient(KEY, base_addresses={"api": proxy.url}), 2)
    dry = reconciler(inbox, proxy.url, types=["payment_intent.*"]).run(dry_run=True)
    assert dry.reconciled > 0 and not stored_ids(inbox)
    reconciler(inbox, proxy.url, types=["payment_intent.*"]).run()
    assert {r.type.split(".")[0] for r in inbox.page()} == {"payment_intent"}
    assert inbox.count(EventFilter(types=("charge.*",))) == 0


def test_warns_loudly_past_thirty_days_and_on_another_api_version(
        stripe_world, inbox: Inbox, caplog) -> None:
    emulator, proxy = stripe_world
    client = stripe.StripeClient(KEY, base_addresses={"api": proxy.url})
    pay(client, 1)
    reconciler(inbox, proxy.url).run()  # the cursor
    inbox.accept([parse_delivery(make_event(api_version="2020-08-27"))])  # what webhooks bring
    emulator.advance(31 * DAY)  # the first events are gone from the list for good
    pay(client, 1)
    report = reconciler(inbox, proxy.url).run()
    assert any("30 days" in w for w in report.warnings)
    assert any("2020-08-27" in w for w in report.warnings)
    assert "WARNING" in caplog.text or caplog.records
