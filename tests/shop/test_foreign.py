"""What the shop did not create, and events it cannot read, through the real worker: ignored
at once with a reason, never retried to death; what may be its own waits, boundedly.

Objects are hand-built in the shapes of ``2026-10-28.endive`` (stripe-python 16.1's
``_invoice.py``, ``_invoice_payment.py``, ``_subscription.py``, ``_subscription_item.py``);
``test_corpus.py`` runs real captured payloads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from ichido import App
from ichido.config import Settings
from ichido.event import parse_delivery
from ichido.shop import access, events, versions
from ichido.shop.app import SCHEMA
from tests.support import make_event

SUB = "sub_shop0001"  # the shop's own id for its subscription
STRIPE_SUB = "sub_1StripeOwn"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    shop = App(Settings(database_url=f"sqlite:///{tmp_path / 'foreign.db'}", max_attempts=3,
                        retry_base_seconds=0.001, retry_cap_seconds=0.001),
               workers=0, schema=SCHEMA)
    shop.migrate()
    shop.start()
    events.register(shop, grace=3 * 86400, wait=600)
    yield shop
    shop.close()


def own_subscription(app: App, *, stripe_id: str | None = STRIPE_SUB,
                     created_at: float | None = None) -> None:
    with app.database.transaction() as tx:
        tx.execute("INSERT INTO shop_subscriptions (id, plan, email, payment_method, locale,"
                   " status, stripe_subscription, created_at) VALUES (?, 'stream',"
                   " 'viewer@example.com', 'konbini', 'ja', 'created', ?, ?)",
                   (SUB, stripe_id, time.time() if created_at is None else created_at))


def deliver(app: App, type: str, obj: dict[str, Any], **envelope: Any) -> Any:
    """Store one event as the receiver would and run the worker until nothing is due."""
    delivery = parse_delivery(make_event(type, obj=obj, **envelope))
    app.inbox.accept([delivery])
    return finished(app, delivery.id)


def finished(app: App, event_id: str) -> Any:
    """Run the worker until the event is done (its retries are due a millisecond apart)."""
    worker = app.worker()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        worker.drain()
        record = app.inbox.get(event_id)
        if record.status in ("processed", "ignored", "dead"):
            return record
        time.sleep(0.01)
    raise AssertionError(f"{event_id} never finished: {record.status}")


def invoice(status: str = "paid", *, subscription: str = STRIPE_SUB,
            metadata: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    """An invoice as endive renders it: ``parent.subscription_details``, no top-level
    ``subscription``, ``payment_intent`` or ``charge``."""
    return {"id": f"in_{status}_{subscription}", "object": "invoice", "status": status,
            "amount_due": 980, "created": int(time.time()), "collection_method": "send_invoice",
            "due_date": int(time.time()) + 3 * 86400, "hosted_invoice_url": "https://v.test/1",
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"subscription": subscription,
                                                "metadata": metadata or {}}}, **fields}


def refund(payment_intent: str | None, **fields: Any) -> dict[str, Any]:
    return {"id": "re_1", "object": "refund", "amount": 980, "status": "succeeded",
            "payment_intent": payment_intent, "charge": "ch_1", "created": int(time.time()),
            **fields}


# -- API versions ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2023-10-16", "2024-06-20", "2025-02-24.acacia",
                                     "2027-03-31.future", "not a version"])
def test_an_event_in_a_version_the_shop_cannot_read_is_ignored_naming_it(
        app: App, version: str, caplog: pytest.LogCaptureFixture) -> None:
    versions.WARNED.clear()  # once per process: other tests may have seen these versions
    own_subscription(app)
    old_shape = {"id": "in_1", "object": "invoice", "status": "paid", "amount_due": 980,
                 "subscription": STRIPE_SUB, "payment_intent": "pi_1"}  # the 2023 shape
    record = deliver(app, "invoice.paid", old_shape, api_version=version)
    shown = version if version != "not a version" else "unreadable"
    assert record.status == "ignored" and record.attempts == 1
    assert record.last_error == f"unsupported_api_version:{shown}"
    assert f"ignored as unsupported_api_version:{shown}" in caplog.text  # the operator is told
    with app.database.reading() as tx:
        assert tx.execute("SELECT count(*) FROM shop_subscription_invoices").fetchone()[0] == 0


@pytest.mark.parametrize("version", ["2025-03-31.basil", "2025-08-27.basil",
                                     "2025-09-30.clover", versions.PINNED])
def test_every_version_from_basil_to_endive_is_read(app: App, version: str) -> None:
    own_subscription(app)
    record = deliver(app, "invoice.paid", invoice(), api_version=version)
    assert record.status == "processed"
    with app.database.reading() as tx:
        assert access.changes(tx, SUB) == ["granted:paid"]


# -- today's shapes ----------------------------------------------------------------------------


def test_an_endive_invoice_named_by_its_metadata_grants_access_before_the_id_is_known(
        app: App) -> None:
    own_subscription(app, stripe_id=None)
    record = deliver(app, "invoice.paid", invoice(metadata={"subscription_id": SUB}))
    assert record.status == "processed"
    with app.database.reading() as tx:
        assert access.changes(tx, SUB) == ["granted:paid"]
        assert tx.execute("SELECT stripe_subscription FROM shop_subscriptions").fetchone()[0] \
            == STRIPE_SUB


def test_a_subscription_s_period_is_read_from_its_items(app: App) -> None:
    own_subscription(app)
    sub = {"id": STRIPE_SUB, "object": "subscription", "status": "active",
           "metadata": {"subscription_id": SUB},
           "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                                                 "current_period_start": 1_900_000_000,
                                                 "current_period_end": 1_902_592_000}]}}
    assert deliver(app, "customer.subscription.updated", sub).status == "processed"
    with app.database.reading() as tx:
        assert tx.execute("SELECT current_period_end FROM shop_subscriptions").fetchone()[0] \
            == 1_902_592_000


def test_a_refund_of_an_invoice_named_by_invoice_payment_paid_revokes_access(app: App) -> None:
    own_subscription(app)
    paid = invoice()
    payment = {"id": "inpay_1", "object": "invoice_payment", "invoice": paid["id"],
               "is_default": True, "status": "paid", "amount_paid": 980,
               "payment": {"type": "payment_intent", "payment_intent": "pi_sub_1"}}
    assert deliver(app, "invoice_payment.paid", payment).status == "ignored"  # not known yet
    assert deliver(app, "invoice.paid", paid).status == "processed"
    assert deliver(app, "refund.created", refund("pi_sub_1")).status == "processed"
    with app.database.reading() as tx:
        assert access.changes(tx, SUB) == ["granted:paid", "revoked:final"]


# -- what the shop did not create ------------------------------------------------------------


@pytest.mark.parametrize("kind, obj, reason", [
    ("invoice.paid", invoice(subscription="sub_1Elsewhere"), "unknown_subscription:sub_1Elsewhere"),
    ("invoice.paid", {**invoice(), "parent": None}, "not_a_subscription_invoice"),
    ("refund.created", refund(None), "no_payment_intent"),
    ("refund.updated", refund("pi_1Elsewhere"), "unknown_payment:pi_1Elsewhere"),
    ("charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": None,
                         "refunds": {"data": [refund(None)]}}, "no_payment_intent"),
    ("customer.subscription.updated", {"id": "sub_1Elsewhere", "object": "subscription",
                                       "status": "active", "metadata": {}},
     "unknown_subscription:sub_1Elsewhere"),
])
def test_what_the_shop_did_not_create_is_ignored_at_once_with_its_reason(
        app: App, kind: str, obj: dict[str, Any], reason: str) -> None:
    own_subscription(app, created_at=time.time() - 86400)  # long made and known: nothing pending
    record = deliver(app, kind, obj)
    assert (record.status, record.attempts, record.last_error) == ("ignored", 1, reason)


def test_an_invoice_of_a_subscription_being_made_waits_then_is_ignored_not_dead(
        app: App) -> None:
    """The shop asked Stripe for a subscription whose id it has not stored: an unknown
    subscription's invoice may be its, so it waits, but never past the worker's last attempt
    (here 3), and it is ignored, not dead."""
    own_subscription(app, stripe_id=None)
    record = deliver(app, "invoice.paid", invoice(subscription="sub_1Maybe"))
    assert record.status == "ignored" and record.attempts == 3
    assert record.last_error == "unknown_subscription:sub_1Maybe:waited"
    assert [f[0] for f in record.failures] == [1, 2]  # retried while it could be its own


def test_an_old_invoice_waits_one_retry_and_no_longer_than_the_setting(app: App) -> None:
    own_subscription(app, stripe_id=None, created_at=time.time() - 3600)
    old = invoice(subscription="sub_1Maybe", created=int(time.time()) - 3000)
    record = deliver(app, "invoice.paid", old, created=int(time.time()) - 700)  # wait: 600 s
    assert (record.status, record.attempts) == ("ignored", 2)  # retried once, no more
    assert record.last_error == "unknown_subscription:sub_1Maybe:waited"


def test_an_invoice_that_waited_applies_once_its_subscription_is_known(app: App) -> None:
    own_subscription(app, stripe_id=None)
    delivery = parse_delivery(make_event("invoice.paid", obj=invoice()))
    app.inbox.accept([delivery])
    app.worker().run_once()
    assert app.inbox.get(delivery.id).status == "retrying"
    with app.database.transaction() as tx:  # the create call answered
        tx.execute("UPDATE shop_subscriptions SET stripe_subscription = ?", (STRIPE_SUB,))
    assert finished(app, delivery.id).status == "processed"  # its retry was due at once
    with app.database.reading() as tx:
        assert access.changes(tx, SUB) == ["granted:paid"]


def test_the_versions_are_stated_and_pinned() -> None:
    assert (versions.OLDEST, versions.NEWEST) == ("2025-03-31.basil", "2026-10-28.endive")
    import stripe

    assert versions.PINNED == stripe._api_version._ApiVersion.CURRENT  # what the SDK is typed for
    assert orjson.loads(make_event())["api_version"] == versions.PINNED


def test_the_worker_s_retries_bound_the_wait_and_the_shop_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ichido.shop import foreign
    from ichido.shop.app import create_shop
    from ichido.shop.settings import ShopSettings

    assert foreign.retries_span(8, 1.0, 3600.0) == 63.5  # ICHIDO_MAX_ATTEMPTS etc. defaults
    assert foreign.retries_span(1, 1.0, 3600.0) == 0
    for wait, warned in ((60.0, False), (900.0, True)):  # the default, then 15 min
        caplog.clear()
        shop = create_shop(Settings(database_url=f"sqlite:///{tmp_path / f'w{wait}.db'}"),
                           ShopSettings(stripe_api_key="sk_test_wait", parent_wait_seconds=wait),
                           workers=0)
        shop.app.close()
        assert ("ICHIDO_PARENT_WAIT" in caplog.text) is warned


def test_the_operator_is_told_of_an_unread_version_once_not_per_event(
        app: App, caplog: pytest.LogCaptureFixture) -> None:
    versions.WARNED.clear()
    for n in range(3):
        deliver(app, "invoice.paid", {**invoice(), "id": f"in_{n}"}, api_version="2023-10-16")
    assert caplog.text.count("ignored as unsupported_api_version:2023-10-16") == 1
