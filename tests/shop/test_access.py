"""A subscription's access, every order of its events: exhaustively, with ties and duplicates.

How "every order" is covered without running n! orders: the explorer walks the graph whose
nodes are the *sets* of events applied so far. From each set S it applies every event e (a new
one, or one already in S: a duplicate) inside a savepoint, reads the whole state (status,
invoices, access, its change log, refunds, outbox rows), rolls back, and checks that the state
reached for S ∪ {e} is the same whichever path reached that set first. If that holds on every
edge, then by induction every order of the n events, with any duplicates anywhere, ends in one
state: that of the full set. That is 2ⁿ·n applications instead of n!·n (10 events: ~10,000
instead of ~36 million). An event whose handler raises ``RetryLater`` (an invoice before its
subscription is known) is not applicable from S; the worker would retry it later, which is
another path of the same graph.

The grace period is the one thing that depends on the clock rather than on the set of facts;
its tests pin ``now``.
"""

from __future__ import annotations

import random
import threading
from typing import Any, Callable, Iterator

import pytest

from ichido.db import Database
from ichido.errors import RetryLater
from ichido.shop import access, refunds, subscriptions
from tests.shop.conftest import open_shop_database

DAY = 86400
NOW = 1_900_000_000  # the shop's clock in these tests
GRACE = 3 * DAY
Event = tuple[str, int, dict[str, Any]]  # (type, created second, data.object)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Database]:
    """On SQLite alone: the exhaustive walks are about the rules, not the engine."""
    database = open_shop_database(sqlite_url)
    yield database
    database.close()


def new_subscription(tx: Any, method: str = "card") -> str:
    sub_id = f"sub_{random.getrandbits(64):x}"
    tx.execute("INSERT INTO shop_subscriptions (id, plan, email, payment_method, locale, status,"
               " created_at) VALUES (?, 'stream', 'viewer@example.com', ?, 'ja', 'created', ?)",
               (sub_id, method, NOW))
    return sub_id


def apply(tx: Any, event: Event, now: float = NOW) -> None:
    kind, second, obj = event
    if kind.startswith("invoice."):
        subscriptions.apply_invoice(tx, obj, grace=GRACE, now=now)
    elif kind.startswith("refund."):
        refunds.apply_refund(tx, obj, grace=GRACE, now=now)
    else:
        subscriptions.apply_subscription(tx, obj, at=second, grace=GRACE, now=now,
                                         deleted=kind == "customer.subscription.deleted")


def state(tx: Any, sub_id: str) -> dict[str, Any]:
    """Everything the shop holds about one subscription, its outbox rows included."""
    shown = subscriptions.to_json(tx, sub_id)
    assert shown is not None
    rows = {
        "invoices": "SELECT id, status, payment_intent, late_since FROM"
                    " shop_subscription_invoices WHERE subscription_id = ? ORDER BY id",
        "refunds": "SELECT id, status FROM shop_subscription_refunds WHERE subscription_id = ?"
                   " ORDER BY id",
        "outbox": "SELECT key, kind FROM ichido_outbox WHERE key LIKE '%' || ? || '%'"
                  " ORDER BY key",
        "access rows": "SELECT count(*) FROM shop_subscription_access WHERE subscription_id = ?",
    }
    found = {name: [tuple(r) for r in tx.execute(sql, (sub_id,)).fetchall()]
             for name, sql in rows.items()}
    return {**found, "status": shown["status"], "period_end": shown["current_period_end"],
            "entitlement": shown["entitlement"], "changes": access.changes(tx, sub_id),
            "outbox": [(key.replace(sub_id, "SUB"), kind) for key, kind in found["outbox"]]}


def explore(store: Database, story: Callable[[str], list[Event]], method: str = "card",
            now: float = NOW) -> tuple[dict[str, Any], int]:
    """Every order of ``story``'s events, with duplicates, ends in one state: returns it and
    the number of edges checked (see the module's docstring)."""
    with store.transaction() as tx:
        sub_id = new_subscription(tx, method)
        events = story(sub_id)
        full = frozenset(range(len(events)))
        states: dict[frozenset[int], dict[str, Any]] = {frozenset(): state(tx, sub_id)}
        edges = 0

        def walk(applied: frozenset[int], depth: int) -> None:
            nonlocal edges
            for i in range(len(events)):
                tx.execute(f"SAVEPOINT s{depth}")
                try:
                    apply(tx, events[i], now)
                except RetryLater:
                    tx.execute(f"ROLLBACK TO SAVEPOINT s{depth}")
                    continue
                reached, got = applied | {i}, state(tx, sub_id)
                edges += 1
                if reached in states:
                    assert got == states[reached], (
                        f"{[events[j][0] for j in sorted(applied)]} then {events[i][0]}")
                else:
                    states[reached] = got
                    walk(reached, depth + 1)
                tx.execute(f"ROLLBACK TO SAVEPOINT s{depth}")

        walk(frozenset(), 0)
        assert full in states, "some event could never be applied"
    return states[full], edges


# -- the stories ---------------------------------------------------------------------------------

def sub(sub_id: str, status: str, end: int) -> dict[str, Any]:
    """A subscription as basil and later render it: its period on its items."""
    return {"id": f"stripe_{sub_id}", "object": "subscription", "status": status,
            "items": {"object": "list", "data": [{"id": f"si_{sub_id}",
                                                  "object": "subscription_item",
                                                  "current_period_end": end}]},
            "metadata": {"subscription_id": sub_id}}


def invoice(sub_id: str, n: int, status: str, created: int, amount: int = 980,
            **fields: Any) -> dict[str, Any]:
    """An invoice as basil and later render it: its subscription under ``parent`` (without the
    metadata snapshot, so that the shop must find it by the Stripe id it stored)."""
    return {"id": f"in_{n}_{sub_id}", "object": "invoice", "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": f"stripe_{sub_id}", "metadata": {}}},
            "status": status, "amount_due": amount, "created": created,
            "collection_method": "charge_automatically", **fields}


def paid_by(payment_intent: str) -> dict[str, Any]:
    """An invoice's ``payments`` (expanded) naming the PaymentIntent that paid it."""
    return {"payments": {"object": "list", "data": [
        {"id": f"inpay_{payment_intent}", "object": "invoice_payment", "status": "paid",
         "is_default": True, "payment": {"type": "payment_intent",
                                         "payment_intent": payment_intent}}]}}


# trial → active → renewal paid → renewal unpaid (still in grace) → canceled
T3 = NOW - DAY  # the unpaid renewal's period began a day ago: within the 3-day grace
T2, T1 = T3 - 30 * DAY, T3 - 60 * DAY
T0 = T1 - 14 * DAY


def card_lifecycle(sub_id: str) -> list[Event]:
    paid = paid_by(f"pi_1_{sub_id}")
    return [
        ("customer.subscription.created", T0, sub(sub_id, "trialing", T1)),
        ("invoice.paid", T0, invoice(sub_id, 0, "paid", T0, amount=0)),  # the trial's ¥0
        ("customer.subscription.updated", T1, sub(sub_id, "active", T2)),
        ("invoice.paid", T1, invoice(sub_id, 1, "paid", T1, **paid)),
        ("invoice.payment_succeeded", T1, invoice(sub_id, 1, "paid", T1, **paid)),  # tie
        ("customer.subscription.updated", T2, sub(sub_id, "active", T3)),  # renewed
        ("invoice.paid", T2, invoice(sub_id, 2, "paid", T2)),
        ("invoice.payment_failed", T3, invoice(sub_id, 3, "open", T3)),
        ("customer.subscription.updated", T3, sub(sub_id, "past_due", T3 + 30 * DAY)),  # tie
        ("customer.subscription.deleted", T3 + 3600, sub(sub_id, "canceled", T3 + 30 * DAY)),
    ]


def test_every_order_of_a_card_lifecycle_with_ties_and_duplicates_ends_the_same(
        store: Database) -> None:
    final, edges = explore(store, card_lifecycle)
    # Every edge of the 2¹⁰ sets but those an invoice cannot take before its subscription is
    # known (RetryLater): the 5 invoices from the empty set, and the 31 sets of invoices alone,
    # which are thus never reached.
    assert edges == 2 ** 10 * 10 - 5 - 31 * 10
    assert final["status"] == "canceled" and final["period_end"] == "2030-04-15T17:46:40+00:00"
    assert final["entitlement"] == {"granted_at": "2030-03-17T17:46:40+00:00",
                                    "revoked_at": "2030-03-17T17:46:40+00:00", "reason": "ended"}
    assert final["changes"] == ["granted:paid", "revoked:final"]  # no suspension: in grace
    assert [(i[0].split("_")[1], i[1]) for i in final["invoices"]] == [
        ("0", "paid"), ("1", "paid"), ("2", "paid"), ("3", "open")]
    assert final["outbox"] == [("mail:SUB:access-ended", "mail")]


def test_every_order_before_the_end_keeps_access_through_the_failed_renewal(
        store: Database) -> None:
    final, _ = explore(store, lambda s: card_lifecycle(s)[:-1])
    assert final["status"] == "past_due" and final["changes"] == ["granted:paid"]
    assert final["entitlement"]["revoked_at"] is None and final["outbox"] == []


# a konbini plan: voucher paid, renewed (the second invoice open, due in two days), the first
# invoice refunded in full (konbini refunds wait for bank details), then the end that the
# shop's own cancellation brings
K2 = NOW - DAY
K1 = K2 - 30 * DAY


def konbini_refunded(sub_id: str) -> list[Event]:
    def inv(n: int, status: str, created: int, **fields: Any) -> dict[str, Any]:
        return invoice(sub_id, n, status, created, amount=1980, collection_method="send_invoice",
                       due_date=created + 3 * DAY, hosted_invoice_url=f"https://v.test/{n}",
                       **fields)

    refund = {"id": f"re_{sub_id}", "object": "refund", "amount": 1980,
              "payment_intent": f"pi_1_{sub_id}", "created": K2 + 60}
    return [
        ("customer.subscription.created", K1, sub(sub_id, "active", K2)),
        ("invoice.finalized", K1, inv(1, "open", K1)),
        ("invoice.paid", K1 + DAY, inv(1, "paid", K1, **paid_by(f"pi_1_{sub_id}"))),
        ("customer.subscription.updated", K2, sub(sub_id, "active", K2 + 30 * DAY)),
        ("invoice.finalized", K2, inv(2, "open", K2)),
        ("refund.created", K2 + 60, refund | {"status": "requires_action"}),
        ("refund.updated", K2 + 3600, refund | {"status": "succeeded"}),
        ("customer.subscription.deleted", K2 + 120, sub(sub_id, "canceled", K2 + 30 * DAY)),
    ]


def test_every_order_of_a_refunded_konbini_plan_revokes_once_and_cancels_once(
        store: Database) -> None:
    final, edges = explore(store, konbini_refunded, method="konbini")
    assert edges < 2 ** 8 * 8  # a refund before its invoice's payment waits (RetryLater)
    assert final["entitlement"]["reason"] == "refunded"
    assert final["changes"] == ["granted:paid", "revoked:final"]
    assert final["refunds"] == [(f"re_{final['invoices'][0][0].split('_', 2)[2]}", "succeeded")]
    assert final["outbox"] == [
        ("ichido-cancel-SUB", "stripe_cancel_subscription"), ("mail:SUB:access-ended", "mail"),
        (f"mail:SUB:invoice-in_1_SUB", "mail"), (f"mail:SUB:invoice-in_2_SUB", "mail")]


def test_a_partial_refund_leaves_access_as_it_was(store: Database) -> None:
    def story(sub_id: str) -> list[Event]:
        partial = ("refund.created", T3, {"id": f"re_{sub_id}", "object": "refund",
                                          "amount": 500, "status": "succeeded",
                                          "payment_intent": f"pi_1_{sub_id}", "created": T3})
        return card_lifecycle(sub_id)[2:5] + [partial]

    final, _ = explore(store, story)
    assert final["changes"] == ["granted:paid"] and final["entitlement"]["revoked_at"] is None
    assert final["outbox"] == []


# -- the grace period: the clock, not the events -------------------------------------------------

def recorded(store: Database, events: Any, now: float = NOW) -> str:
    """A new subscription with ``events`` (a list, or a story) applied one by one."""
    with store.transaction() as tx:
        sub_id = new_subscription(tx)
    for event in events(sub_id) if callable(events) else events:
        with store.transaction() as tx:
            apply(tx, event, now)
    return sub_id


def seen(store: Database, sub_id: str) -> dict[str, Any]:
    with store.reading() as tx:
        return state(tx, sub_id)


def past_due(sub_id: str) -> list[Event]:
    return card_lifecycle(sub_id)[:-1]


def test_past_due_beyond_the_grace_period_is_suspended_once_by_racing_sweeps(
        store: Database) -> None:
    sub_id = recorded(store, past_due)
    assert access.sweep(store, GRACE, now=T3 + GRACE - 1) == 0  # the last second of grace
    later, results, start = T3 + GRACE + 1, [], threading.Barrier(2)

    def sweep() -> None:
        start.wait()
        results.append(access.sweep(store, GRACE, now=later))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1] and access.sweep(store, GRACE, now=later) == 0
    got = seen(store, sub_id)
    assert got["entitlement"]["reason"] == "unpaid" and got["entitlement"]["revoked_at"]
    assert got["changes"] == ["granted:paid", f"suspended:in_3_{sub_id}"]
    assert got["outbox"] == [("mail:SUB:access-suspended-in_3_SUB", "mail")]


def test_a_suspended_subscription_paid_late_gets_access_back_once(store: Database) -> None:
    sub_id = recorded(store, past_due)
    access.sweep(store, GRACE, now=T3 + GRACE + 1)
    paid = ("invoice.paid", T3 + 5 * DAY, invoice(sub_id, 3, "paid", T3))
    active = ("customer.subscription.updated", T3 + 5 * DAY,
              sub(sub_id, "active", T3 + 30 * DAY))
    recorded(store, [paid, active, paid], now=T3 + 5 * DAY)  # a duplicate too
    access.sweep(store, GRACE, now=T3 + 6 * DAY)
    got = seen(store, sub_id)
    assert got["status"] == "active" and got["entitlement"]["revoked_at"] is None
    assert got["changes"] == ["granted:paid", f"restored:in_3_{sub_id}",
                              f"suspended:in_3_{sub_id}"]


def test_an_event_past_the_grace_period_suspends_without_waiting_for_the_sweep(
        store: Database) -> None:
    sub_id = recorded(store, past_due, now=T3 + GRACE + 60)
    assert seen(store, sub_id)["entitlement"]["reason"] == "unpaid"
    assert access.sweep(store, GRACE, now=T3 + GRACE + 120) == 0


def test_the_end_after_a_suspension_revokes_for_good_from_the_suspension_on(
        store: Database) -> None:
    sub_id = recorded(store, past_due)
    access.sweep(store, GRACE, now=T3 + GRACE + 1)
    suspended_at = seen(store, sub_id)["entitlement"]["revoked_at"]
    recorded(store, card_lifecycle(sub_id)[-1:], now=T3 + 10 * DAY)
    paid_after_the_end = ("invoice.paid", T3 + 11 * DAY, invoice(sub_id, 3, "paid", T3))
    recorded(store, [paid_after_the_end], now=T3 + 11 * DAY)
    got = seen(store, sub_id)
    assert got["entitlement"] == {"granted_at": got["entitlement"]["granted_at"],
                                  "revoked_at": suspended_at, "reason": "ended"}
    assert got["changes"] == ["granted:paid", "revoked:final", f"suspended:in_3_{sub_id}"]
    assert [k for k, _ in got["outbox"]] == ["mail:SUB:access-ended",
                                            "mail:SUB:access-suspended-in_3_SUB"]


def test_a_konbini_invoice_open_and_not_yet_due_is_not_late_however_short_the_grace(
        store: Database) -> None:
    def story(sub_id: str) -> list[Event]:
        return konbini_refunded(sub_id)[:5]  # the second invoice is open, due K2 + 3 days

    sub_id = recorded(store, story)
    assert access.sweep(store, 0, now=K2 + 3 * DAY - 1) == 0
    assert access.sweep(store, GRACE, now=K2 + 3 * DAY + GRACE - 1) == 0
    assert access.sweep(store, GRACE, now=K2 + 3 * DAY + GRACE + 1) == 1
    assert seen(store, sub_id)["changes"] == ["granted:paid", f"suspended:in_2_{sub_id}"]


def test_a_sweep_over_many_subscriptions_pages_through_them(store: Database) -> None:
    subs = [recorded(store, past_due) for _ in range(access.BATCH + 5)]
    assert access.sweep(store, GRACE, now=T3 + GRACE + 1) == len(subs)
    assert all(seen(store, s)["entitlement"]["reason"] == "unpaid" for s in subs)
