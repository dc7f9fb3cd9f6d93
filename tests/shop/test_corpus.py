"""Real captured Stripe payloads (``corpus/``, sources and licences in its README) through the
shop's handlers and a catch-all app, on the real worker: every event is processed or ignored,
none is dead; real basil payloads pointed at the shop's own konbini subscription grant access.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import orjson
import pytest

from ichido import App
from ichido.config import Settings
from ichido.event import parse_delivery
from ichido.shop import access, events
from ichido.shop.app import SCHEMA
from ichido.testing import wait_until
from tests.support import (ServerProcess, answers_of, effect_counts, effects_schema,
                           open_store, record_effect)

CORPUS = Path(__file__).with_name("corpus")
SUB, STRIPE_SUB = "sub_shopcorpus01", "sub_1CorpusKonbini"
# pay's fixtures are an event's ``data`` only, named by pay's own handler names
PAY_TYPES = {"subscription.created": "customer.subscription.created",
             "subscription.updated": "customer.subscription.updated",
             "subscription.deleted": "customer.subscription.deleted",
             "subscription.trial_will_end": "customer.subscription.trial_will_end",
             "subscription.trial_ended": "customer.subscription.updated",
             "invoice.updated": "invoice_payment.paid"}  # its object is an invoice_payment
# Stripe's own fixtures (stripe/openapi ``fixtures3.json``) are objects of one release
OPENAPI_TYPES = {"invoice": "invoice.paid", "subscription": "customer.subscription.updated",
                 "invoice_payment": "invoice_payment.paid", "refund": "refund.created",
                 "charge": "charge.succeeded", "payment_intent": "payment_intent.succeeded",
                 "dispute": "charge.dispute.created",
                 "checkout.session": "checkout.session.completed"}
DAHLIA = "2026-07-29.dahlia"
BASIL = "2025-03-31.basil"
BEFORE_BASIL = "2022-11-15"  # pay's older fixtures: some version before basil, shape and date


def basil_shaped(obj: dict[str, Any]) -> bool:
    """What only basil and later render (see ``ichido.shop.versions``)."""
    items = (obj.get("items") or {}).get("data") or []
    return ("parent" in obj and obj.get("object") == "invoice") \
        or obj.get("object") == "invoice_payment" \
        or any("current_period_end" in item for item in items) \
        or (obj.get("object") == "charge" and (obj.get("created") or 0) >= 1743379200)


def corpus() -> list[dict[str, Any]]:
    """Each captured file as an event: verbatim when it is one; pay's data-only fixtures in an
    envelope of ours (id, type from the file name, api_version from the object's shape)."""
    found = []
    for path in sorted(CORPUS.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        if "resources" in doc:
            found += [envelope(f"evt_corpus_openapi_{name.replace('.', '_')}", OPENAPI_TYPES[name],
                               DAHLIA, obj) for name, obj in doc["resources"].items()]
            continue
        if doc.get("object") != "event":
            name = path.stem.removeprefix("pay_")
            obj = doc["object"]
            doc = envelope(f"evt_corpus_{name.replace('.', '_')}", PAY_TYPES.get(name, name),
                           BASIL if basil_shaped(obj) else BEFORE_BASIL, obj,
                           doc.get("previous_attributes"))
        found.append(doc)
    return found


def envelope(event_id: str, type: str, version: str, obj: dict[str, Any],
             previous: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {"id": event_id, "object": "event", "api_version": version,
            "created": obj.get("created") or 1_700_000_000, "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
            "type": type, "data": data}


def open_app(tmp_path: Path, name: str, *, shop: bool) -> App:
    app = App(Settings(database_url=f"sqlite:///{tmp_path / name}", max_attempts=3,
                       retry_base_seconds=0.001, retry_cap_seconds=0.001),
              workers=0, schema=[*SCHEMA, *effects_schema()])
    app.migrate()
    app.start()
    if shop:
        events.register(app, grace=3 * 86400, wait=600)
    else:
        app.on("*")(record_effect)  # a catch-all: one effects row per application
    return app


def run_all(app: App, docs: list[dict[str, Any]]) -> dict[str, Any]:
    deliveries = [parse_delivery(orjson.dumps(doc)) for doc in docs]
    app.inbox.accept(deliveries)
    worker, deadline = app.worker(), time.monotonic() + 120
    while time.monotonic() < deadline:
        worker.drain()
        records = {d.id: app.inbox.get(d.id) for d in deliveries}
        if all(r.status in ("processed", "ignored", "dead") for r in records.values()):
            return records
        time.sleep(0.01)  # retries are due a millisecond apart
    raise AssertionError("the corpus never finished")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[App]:
    app = open_app(tmp_path, "shop.db", shop=True)
    with app.database.transaction() as tx:  # the shop's own konbini subscription, long known
        tx.execute("INSERT INTO shop_subscriptions (id, plan, email, payment_method, locale,"
                   " status, stripe_subscription, created_at) VALUES (?, 'stream',"
                   " 'viewer@example.com', 'konbini', 'ja', 'active', ?, ?)",
                   (SUB, STRIPE_SUB, time.time() - 30 * 86400))
    yield app
    app.close()


def test_the_corpus_holds_old_and_basil_payloads() -> None:
    docs = corpus()
    versions = {d.get("api_version") for d in docs}
    assert len(docs) >= 38 and {None, "2020-08-27", BEFORE_BASIL, BASIL, DAHLIA} <= versions


def test_every_real_payload_is_processed_or_ignored_by_the_shop_none_dead(shop: App) -> None:
    records = run_all(shop, corpus())
    statuses = {r.status for r in records.values()}
    assert statuses <= {"processed", "ignored"}, {i: r.last_error for i, r in records.items()
                                                   if r.status not in ("processed", "ignored")}
    handled = set(shop.handlers.types())
    for record in records.values():
        if record.status == "ignored" and record.type in handled:
            assert record.last_error, record.id  # the shop said why
            assert record.attempts == 1, record.id  # at once: nothing here is the shop's
    old = [r for r in records.values() if r.type in handled
           and orjson.loads(r.body).get("api_version") in (None, "2020-08-27", BEFORE_BASIL)]
    assert old and all(r.last_error.startswith("unsupported_api_version:") for r in old)


def test_every_real_payload_is_applied_once_by_a_catch_all_app(tmp_path: Path) -> None:
    app = open_app(tmp_path, "all.db", shop=False)
    try:
        docs = corpus()
        records = run_all(app, docs + docs)  # each twice: the second is a duplicate
        assert {r.status for r in records.values()} == {"processed"}
        counts = effect_counts(app.database)
        assert set(counts) == {d["id"] for d in docs}  # (dj-stripe's files share a few ids)
        assert set(counts.values()) == {1}
    finally:
        app.close()


def pointed_at_the_shop(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    obj = doc["data"]["object"]
    obj.update(changes)
    doc["id"] = f"{doc['id']}_ours"
    return doc


def by_file(name: str) -> dict[str, Any]:
    return next(d for d in corpus() if d["id"] == f"evt_corpus_{name.replace('.', '_')}")


def test_real_basil_payloads_pointed_at_the_shop_s_konbini_subscription_pay_and_refund(
        shop: App) -> None:
    """pay's real basil invoice (``parent.subscription_details``, no ``subscription``) and
    invoice_payment, rewritten to name the shop's subscription, then a refund of its payment."""
    failed = by_file("invoice.payment_failed")
    parent = copy.deepcopy(failed["data"]["object"]["parent"])
    parent["subscription_details"]["subscription"] = STRIPE_SUB
    paid = pointed_at_the_shop(failed, id="in_1CorpusPaid", status="paid", currency="jpy",
                               amount_due=980, collection_method="send_invoice",
                               parent=parent, due_date=None)
    paid["type"] = "invoice.paid"
    payment = pointed_at_the_shop(by_file("invoice.updated"), invoice="in_1CorpusPaid")
    pi = payment["data"]["object"]["payment"]["payment_intent"]
    refund = {"id": "evt_corpus_refund_ours", "object": "event", "api_version": BASIL,
              "created": int(time.time()), "type": "refund.created", "data": {"object": {
                  "id": "re_1Corpus", "object": "refund", "amount": 980, "status": "succeeded",
                  "payment_intent": pi, "created": int(time.time())}}}
    records = run_all(shop, [paid])
    assert {r.status for r in records.values()} == {"processed"}
    with shop.database.reading() as tx:
        assert access.changes(tx, SUB) == ["granted:paid"]
        assert tx.execute("SELECT status FROM shop_subscription_invoices WHERE id = ?",
                          ("in_1CorpusPaid",)).fetchone()[0] == "paid"
    records = run_all(shop, [payment, refund])
    assert {r.status for r in records.values()} == {"processed"}
    with shop.database.reading() as tx:
        assert access.changes(tx, SUB) == ["granted:paid", "revoked:final"]


def test_a_real_basil_subscription_update_moves_the_period_from_its_items(shop: App) -> None:
    updated = by_file("subscription.updated")
    ours = pointed_at_the_shop(updated, id=STRIPE_SUB, status="active",
                               metadata={"subscription_id": SUB})
    records = run_all(shop, [ours])
    assert {r.status for r in records.values()} == {"processed"}
    end = updated["data"]["object"]["items"]["data"][0]["current_period_end"]
    with shop.database.reading() as tx:
        assert tx.execute("SELECT current_period_end FROM shop_subscriptions WHERE id = ?",
                          (SUB,)).fetchone()[0] == end


def test_every_real_payload_signed_and_posted_to_a_real_shop_server_is_done_none_dead(
        tmp_path: Path) -> None:
    """The corpus as Stripe would send it: signed, over loopback HTTP, to ``ichido serve`` of
    the shop; each answered 200 and, in the end, processed or ignored with the same reasons as
    on the worker above."""
    database_url = f"sqlite:///{tmp_path / 'served.db'}"
    server = ServerProcess(database_url, app="ichido.shop.app:create_app", env={
        "STRIPE_API_KEY": "sk_test_corpus", "STRIPE_API_BASE": "http://127.0.0.1:9",
        "ICHIDO_MAIL_DIR": str(tmp_path / "mail")})
    store = open_store(database_url)
    try:
        docs = corpus()
        with httpx.Client(timeout=30) as client:
            answers = answers_of(server.url, [orjson.dumps(d) for d in docs], client)
        assert {status for status, _ in answers} == {200}

        def done() -> bool:
            return all(store.get(d["id"]) is not None and store.get(d["id"]).status in
                       ("processed", "ignored", "dead") for d in docs)

        wait_until(done, timeout=120, interval=0.1, message="every posted event finished")
        served = {d["id"]: store.get(d["id"]) for d in docs}
    finally:
        server.stop()
        store.close()
    assert {r.status for r in served.values()} <= {"processed", "ignored"}
    reasons = {i: r.last_error for i, r in served.items() if r.last_error}
    assert reasons["evt_corpus_invoice_payment_failed"] == "unknown_subscription:sub_1234"
    assert reasons["evt_charge_succeeded"] == "unsupported_api_version:unreadable"
    assert reasons["evt_corpus_openapi_refund"] == "no_payment_intent"
