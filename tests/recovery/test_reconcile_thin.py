"""The reconciler walks ``GET /v2/core/events`` too for an account that sends thin events: the
notifications the inbox never got are stored as a thin destination would have received them,
with a cursor of their own that a crash resumes, and dry runs that store nothing."""

from __future__ import annotations

from typing import Iterator

import orjson
import pytest
import stripe

from ichido.config import Settings
from ichido.inbox import Inbox
from ichido.recovery.reconcile import Reconciler
from ichido.schema import open_inbox
from tests.recovery.conftest import KEY
from tests.recovery.test_reconcile import pay, stored_ids


@pytest.fixture
def inbox(database_url: str) -> Iterator[Inbox]:
    store = open_inbox(Settings(database_url=database_url), migrate=True)
    yield store
    store.close()


def thin_destination(client: stripe.StripeClient) -> None:
    client.v2.core.event_destinations.create({
        "name": "thin", "type": "webhook_endpoint", "event_payload": "thin",
        "enabled_events": ["v1.payment_intent.succeeded", "v1.payment_intent.created",
                           "v1.charge.succeeded"],
        "webhook_endpoint": {"url": "http://127.0.0.1:9/unreachable"}})


def thin_ids(client: stripe.StripeClient) -> set[str]:
    return {e.id for e in client.v2.core.events.list({"limit": 100}).auto_paging_iter()}


def test_an_account_with_a_thin_destination_has_its_v2_events_stored(
        stripe_world, inbox: Inbox) -> None:
    emulator, proxy = stripe_world
    client = stripe.StripeClient(KEY, base_addresses={"api": proxy.url})
    thin_destination(client)
    pay(client, 40)
    thin = thin_ids(client)
    assert len(thin) > 100  # more than one v2 page
    report = Reconciler(inbox, client).run()
    assert report.thin
    assert stored_ids(inbox) == {e["id"] for e in emulator.events()} | thin
    stored = {r.id: orjson.loads(r.body) for r in inbox.page(limit=10_000) if r.id in thin}
    body = next(iter(stored.values()))
    assert body["object"] == "v2.core.event" and "data" not in body  # the pushed shape
    assert body["snapshot_event"].startswith("evt_")
    again = Reconciler(inbox, client).run()
    assert again.reconciled == 0 and again.known >= len(thin)


def test_without_a_thin_destination_v2_is_not_walked(stripe_world, inbox: Inbox) -> None:
    emulator, proxy = stripe_world
    client = stripe.StripeClient(KEY, base_addresses={"api": proxy.url})
    pay(client, 2)
    report = Reconciler(inbox, client).run()
    assert not report.thin and proxy.seen_v2 == []
    assert stored_ids(inbox) == {e["id"] for e in emulator.events()}
    forced = Reconciler(inbox, client, thin=True).run()  # the operator says so
    assert forced.thin and forced.reconciled == len(thin_ids(client))


def test_a_dry_run_stores_nothing_and_keeps_no_cursor(stripe_world, inbox: Inbox) -> None:
    _, proxy = stripe_world
    client = stripe.StripeClient(KEY, base_addresses={"api": proxy.url})
    thin_destination(client)
    pay(client, 2)
    dry = Reconciler(inbox, client).run(dry_run=True)
    assert dry.thin and set(dry.found) >= thin_ids(client) and not stored_ids(inbox)
    with inbox.database.reading() as tx:
        assert tx.execute("SELECT count(*) FROM ichido_reconcile_cursors").fetchone()[0] == 0


def test_a_crash_mid_v2_walk_resumes_where_it_stopped(stripe_world, inbox: Inbox) -> None:
    _, proxy = stripe_world
    client = stripe.StripeClient(KEY, base_addresses={"api": proxy.url})
    thin_destination(client)
    pay(client, 40)
    thin = thin_ids(client)
    proxy.faults_v2 = [None, None, 400]  # the newest probe, page 1, then the process "dies"
    with pytest.raises(stripe.StripeError):
        Reconciler(inbox, client).run()
    first = stored_ids(inbox) & thin
    assert 0 < len(first) < len(thin)
    with inbox.database.reading() as tx:
        upper, reached = tx.execute("SELECT walk_upper, walk_reached FROM"
                                    " ichido_reconcile_cursors WHERE account = 'default:v2'"
                                    ).fetchone()
    assert reached < upper
    proxy.seen_v2.clear()
    report = Reconciler(inbox, client).run()
    assert stored_ids(inbox) >= thin
    assert report.reconciled == len(thin) - len(first)
    from ichido.recovery.thin_walk import rfc3339
    assert any(f"created%5Blt%5D={rfc3339(reached + 1)}".replace(":", "%3A") in q
               for q in proxy.seen_v2)  # resumed, not restarted
