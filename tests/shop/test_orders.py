"""I4 for the shop: every permutation of each lifecycle's events, with duplicates, ends in the
same state as the events applied in order, with each effect once. Runs on every backend."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import pytest

from ichido.shop import order_view, orders, refunds
from ichido.errors import RetryLater
from ichido.db import Database



def new_order(store: Database, *, kind: str, method: str, amount: int = 1500,
              stock: int | None = None) -> str:
    order_id = f"ord_{random.getrandbits(64):x}"
    product = f"prod_{order_id}"
    now = time.time()
    with store.transaction() as tx:
        if stock is not None:
            tx.execute("INSERT INTO shop_stock (product_id, available) VALUES (?, ?)",
                       (product, stock - 1))  # one reserved by this order
        tx.execute("INSERT INTO shop_orders (id, product_id, product_name, kind, quantity, amount,"
                   " payment_method, email, status, created_at, updated_at)"
                   " VALUES (?, ?, 'thing', ?, 1, ?, ?, 'buyer@example.com', 'created', ?, ?)",
                   (order_id, product, kind, amount, method, now, now))
    return order_id


def pi(order_id: str, status: str, method: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"pi_{order_id}", "object": "payment_intent", "status": status,
            "payment_method_types": [method], "metadata": {"order_id": order_id}, **extra}


VOUCHER = {"type": "konbini_display_details", "konbini_display_details": {
    "expires_at": 1_900_000_000, "hosted_voucher_url": "https://example.test/v/1",
    "stores": {"seicomart": {"confirmation_number": "12345678901", "payment_code": "123456"}}}}
DECLINE = {"message": "Your card was declined.", "code": "card_declined"}


def refund(order_id: str, status: str, amount: int = 1500, rid: str = "re_1") -> dict[str, Any]:
    return {"id": f"{rid}_{order_id}", "object": "refund", "amount": amount, "status": status,
            "payment_intent": f"pi_{order_id}", "created": int(time.time())}  # after the order


def instructions(left: int) -> dict[str, Any]:
    return {"type": "display_bank_transfer_instructions", "display_bank_transfer_instructions": {
        "type": "jp_bank_transfer", "currency": "jpy", "amount_remaining": left,
        "reference": "123456", "hosted_instructions_url": "https://example.test/t/1",
        "financial_addresses": [{"type": "zengin", "zengin": {
            "bank_name": "テスト銀行", "bank_code": "0001", "branch_name": "本店",
            "branch_code": "001", "account_type": "futsu", "account_number": "1234567",
            "account_holder_name": "ストライプ"}}]}}


def lifecycle(name: str, order_id: str) -> list[tuple[str, dict[str, Any]]]:
    konbini_open = pi(order_id, "requires_action", "konbini", next_action=VOUCHER)
    transfer_open = pi(order_id, "requires_action", "customer_balance", amount=1500,
                       next_action=instructions(1500))
    redirect = {"type": "redirect_to_url", "redirect_to_url": {
        "url": "https://example.test/paypay/1", "return_url": "https://shop.test/back"}}
    return {
        "paypay_paid": [("pi", pi(order_id, "requires_action", "paypay", next_action=redirect)),
                        ("pi", pi(order_id, "succeeded", "paypay"))],
        "paypay_failed": [("pi", pi(order_id, "requires_action", "paypay", next_action=redirect)),
                          ("pi", pi(order_id, "requires_payment_method", "paypay",
                                    last_payment_error={"message": "not authorised"}))],
        "paypay_abandoned": [("pi", pi(order_id, "requires_action", "paypay",
                                       next_action=redirect)),
                             ("pi", pi(order_id, "canceled", "paypay",
                                       cancellation_reason="abandoned"))],
        "transfer_paid_in_two_parts": [
            ("pi", transfer_open),
            ("pi", pi(order_id, "requires_action", "customer_balance", amount=1500,
                      next_action=instructions(1000))),
            ("pi", pi(order_id, "requires_action", "customer_balance", amount=1500,
                      next_action=instructions(400))),
            ("pi", pi(order_id, "succeeded", "customer_balance", amount=1500))],
        "transfer_expired": [("pi", transfer_open),
                             ("pi", pi(order_id, "canceled", "customer_balance", amount=1500,
                                       cancellation_reason="abandoned"))],
        "konbini_paid": [("pi", pi(order_id, "requires_payment_method", "konbini")),
                         ("pi", konbini_open), ("pi", pi(order_id, "succeeded", "konbini"))],
        "konbini_expired": [("pi", konbini_open),
                            ("pi", pi(order_id, "requires_payment_method", "konbini",
                                      last_payment_error={"message": "expired"}))],
        "card_paid": [("pi", pi(order_id, "requires_payment_method", "card")),
                      ("pi", pi(order_id, "succeeded", "card"))],
        "card_declined": [("pi", pi(order_id, "requires_payment_method", "card",
                                    last_payment_error=DECLINE))],
        "card_full_refund": [("pi", pi(order_id, "succeeded", "card")),
                             ("refund", refund(order_id, "pending")),
                             ("refund", refund(order_id, "succeeded"))],
        "konbini_partial_refund": [("pi", konbini_open), ("pi", pi(order_id, "succeeded", "konbini")),
                                   ("refund", refund(order_id, "requires_action", 500)),
                                   ("refund", refund(order_id, "succeeded", 500))],
    }[name]


def apply_all(store: Database, events: list[tuple[str, dict[str, Any]]]) -> int:
    """Apply like the worker: each event in its own transaction, RetryLater goes to the back."""
    queue, retries = list(events), 0
    while queue:
        kind, obj = queue.pop(0)
        try:
            with store.transaction() as tx:
                if kind == "pi":
                    orders.apply_payment_intent(tx, obj)
                else:
                    refunds.apply_refund(tx, obj)
        except RetryLater:
            retries += 1
            assert retries < 100, "an event never became applicable"
            queue.append((kind, obj))
    return retries


def outcome(store: Database, order_id: str) -> dict[str, Any]:
    with store.reading() as tx:
        order = order_view.to_json(tx, order_id)
        mails = [r[0].split(":", 2)[2] for r in tx.execute(
            "SELECT key FROM ichido_outbox WHERE key LIKE ? ORDER BY key", (f"mail:{order_id}:%",))]
        stock = tx.execute("SELECT available FROM shop_stock WHERE product_id = ?",
                           (f"prod_{order_id}",)).fetchone()
    assert order is not None
    return {"status": order["status"], "entitlement": order["entitlement"] is not None,
            "revoked": bool(order["entitlement"] and order["entitlement"]["revoked_at"]),
            "shipment": (order["shipment"] or {}).get("status"), "mails": mails,
            "refunds": sorted((r["id"], r["amount"], r["status"]) for r in order["refunds"]),
            "voucher": (order["voucher"] or {}).get("url"), "stock": stock and stock[0]}


CASES = [("konbini_paid", "video_ticket", "konbini"), ("konbini_expired", "physical", "konbini"),
         ("card_paid", "physical", "card"), ("card_declined", "physical", "card"),
         ("card_full_refund", "physical", "card"), ("konbini_partial_refund", "video_ticket", "konbini"),
         ("paypay_paid", "video_ticket", "paypay"), ("paypay_failed", "physical", "paypay"),
         ("paypay_abandoned", "physical", "paypay"),
         ("transfer_paid_in_two_parts", "physical", "customer_balance"),
         ("transfer_expired", "physical", "customer_balance")]


def owed_apart(result: dict[str, Any]) -> set[str]:
    """Take out the mails of partial transfers: which ones go out depends on the order of the
    news (never a debt already paid down, never one after the payment), unlike the rest."""
    owed = {m for m in result["mails"] if m.startswith("owed-")}
    result["mails"] = [m for m in result["mails"] if m not in owed]
    return owed


@pytest.mark.parametrize("name,kind,method", CASES)
def test_every_order_of_events_with_duplicates_reaches_the_in_order_state(
        store: Database, name: str, kind: str, method: str) -> None:
    stock = 5 if kind == "physical" else None
    reference = new_order(store, kind=kind, method=method, stock=stock)
    apply_all(store, lifecycle(name, reference))
    expected = outcome(store, reference)
    expected_owed = owed_apart(expected)

    events_count = len(lifecycle(name, reference))
    orderings = list(itertools.permutations(range(events_count)))
    rng = random.Random(name)
    for ordering in orderings:
        order_id = new_order(store, kind=kind, method=method, stock=stock)
        events = [lifecycle(name, order_id)[i] for i in ordering]
        events += [rng.choice(events) for _ in range(2)]  # duplicates, anywhere
        rng.shuffle(events)
        apply_all(store, events)
        got = outcome(store, order_id)
        got["refunds"] = [(rid.replace(order_id, reference), *rest) for rid, *rest in got["refunds"]]
        got["voucher"] = expected["voucher"] if got["voucher"] else None
        assert owed_apart(got) <= expected_owed, f"ordering {ordering} of {name}"
        assert got == expected, f"ordering {ordering} of {name}"


def test_expected_final_states(store: Database) -> None:
    """The in-order outcomes themselves are right (so the permutation test compares with truth)."""
    results = {}
    for name, kind, method in CASES:
        order_id = new_order(store, kind=kind, method=method, stock=5 if kind == "physical" else None)
        apply_all(store, lifecycle(name, order_id))
        results[name] = outcome(store, order_id)
    assert results["konbini_paid"] | {"refunds": []} == {
        "status": "paid", "entitlement": True, "revoked": False, "shipment": None,
        "mails": ["paid", "voucher"], "refunds": [], "voucher": "https://example.test/v/1",
        "stock": None}
    assert results["konbini_expired"]["status"] == "expired"
    assert results["konbini_expired"]["stock"] == 5  # the reservation came back
    assert results["konbini_expired"]["shipment"] is None
    assert results["card_paid"]["shipment"] == "ready_to_ship"
    assert results["card_paid"]["mails"] == ["paid", "warehouse-ship"]
    assert results["card_paid"]["stock"] == 4
    assert results["card_declined"]["status"] == "failed"
    assert results["card_declined"]["stock"] == 5
    assert results["card_full_refund"]["status"] == "refunded"
    assert results["card_full_refund"]["shipment"] == "canceled"
    assert (results["paypay_paid"]["status"], results["paypay_paid"]["entitlement"],
            results["paypay_paid"]["mails"]) == ("paid", True, ["paid"])
    for name, status in (("paypay_failed", "failed"), ("paypay_abandoned", "abandoned"),
                         ("transfer_expired", "expired")):
        assert (results[name]["status"], results[name]["stock"],
                results[name]["shipment"]) == (status, 5, None), name
    two_parts = results["transfer_paid_in_two_parts"]
    assert (two_parts["status"], two_parts["shipment"], two_parts["stock"]) == (
        "paid", "ready_to_ship", 4)
    assert two_parts["mails"] == ["owed-1000", "owed-400", "paid", "transfer", "warehouse-ship"]
    assert results["card_full_refund"]["stock"] == 5
    assert "warehouse-cancel" in results["card_full_refund"]["mails"]
    assert results["konbini_partial_refund"]["status"] == "partially_refunded"
    assert results["konbini_partial_refund"]["revoked"] is False


def test_late_requires_action_after_success_never_moves_the_order_back(store: Database) -> None:
    order_id = new_order(store, kind="video_ticket", method="konbini")
    apply_all(store, [("pi", pi(order_id, "succeeded", "konbini"))])
    before = outcome(store, order_id)
    apply_all(store, [("pi", pi(order_id, "requires_action", "konbini", next_action=VOUCHER))] * 2)
    after = outcome(store, order_id)
    assert before["status"] == after["status"] == "paid"
    assert after["entitlement"] and not after["revoked"]
    # The voucher is still recorded (a fact of the order), once, as it would be in order.
    assert after["mails"] == ["paid", "voucher"]
    assert after["voucher"] == "https://example.test/v/1"


def test_refund_before_its_payment_is_known_is_retried_not_dropped(store: Database) -> None:
    order_id = new_order(store, kind="video_ticket", method="card")
    with pytest.raises(RetryLater):
        with store.transaction() as tx:
            refunds.apply_refund(tx, refund(order_id, "succeeded"))
    retries = apply_all(store, [("refund", refund(order_id, "succeeded")),
                                ("pi", pi(order_id, "succeeded", "card"))])
    assert retries == 1
    result = outcome(store, order_id)
    assert result["status"] == "refunded" and result["revoked"] is True


def test_payment_for_someone_elses_payment_intent_is_ignored(store: Database) -> None:
    with store.transaction() as tx:
        assert orders.apply_payment_intent(tx, {"id": "pi_foreign", "status": "succeeded",
                                                "payment_method_types": ["card"]}) is None


# -- a konbini voucher renewed after it expired (attempts) ---------------------------------------

def voucher(n: int) -> dict[str, Any]:
    return {"type": "konbini_display_details", "konbini_display_details": {
        "expires_at": 1_900_000_000 + n, "hosted_voucher_url": f"https://example.test/v/{n}",
        "stores": {"lawson": {"confirmation_number": f"1234567890{n}", "payment_code": "1"}}}}


def attempt_events(order_id: str, n: int) -> dict[str, dict[str, Any]]:
    """Snapshots of attempt ``n``: its voucher, its expiry, its payment (pm_n identifies it)."""
    return {
        "open": pi(order_id, "requires_action", "konbini", payment_method=f"pm_{n}",
                   next_action=voucher(n)),
        "expired": pi(order_id, "requires_payment_method", "konbini", payment_method=None,
                      last_payment_error={"message": "expired", "payment_method": {
                          "id": f"pm_{n}", "type": "konbini"}}),
        "paid": pi(order_id, "succeeded", "konbini", payment_method=f"pm_{n}"),
    }


@pytest.mark.parametrize("second", ["paid", "expired"])
def test_a_renewed_voucher_moves_the_order_whatever_the_order_of_events(
        store: Database, second: str) -> None:
    """Attempt 1's voucher (the create response) expires; the shop renews (attempt 2, its
    confirm response); then every event of both attempts comes in every order, duplicated.
    Old news about attempt 1 never moves the order; attempt 2 decides it."""

    def play(order_id: str, ordering: tuple[int, ...], rng: random.Random) -> dict[str, Any]:
        one, two = attempt_events(order_id, 1), attempt_events(order_id, 2)
        apply_all(store, [("pi", one["open"])])  # the create call's answer
        first = [("pi", one["open"]), ("pi", one["expired"])]
        apply_all(store, first + [rng.choice(first)])
        assert outcome(store, order_id)["status"] == "expired"
        apply_all(store, [("pi", two["open"])])  # the renewing confirm call's answer
        late = [("pi", one["open"]), ("pi", one["expired"]), ("pi", two["open"]),
                ("pi", two[second])]
        events = [late[i] for i in ordering] + [rng.choice(late)]
        apply_all(store, events)
        return outcome(store, order_id)

    rng = random.Random(second)
    results = [play(new_order(store, kind="physical", method="konbini", stock=5), ordering, rng)
               for ordering in itertools.permutations(range(4))]
    want = {"status": "paid", "stock": 4, "mails": ["paid", "voucher", "voucher-2",
                                                     "warehouse-ship"]} if second == "paid" else {
        "status": "expired", "stock": 5, "mails": ["voucher", "voucher-2"]}
    for result in results:
        assert {k: result[k] for k in want} == want, result
        assert result["voucher"] == "https://example.test/v/2"


def test_attempt_two_heard_of_before_its_answer_is_still_attempt_two(store: Database) -> None:
    """The renewing call's webhook can beat its own answer: the unknown PaymentMethod is the
    newest attempt, never mistaken for old news."""
    order_id = new_order(store, kind="video_ticket", method="konbini")
    one, two = attempt_events(order_id, 1), attempt_events(order_id, 2)
    apply_all(store, [("pi", one["open"]), ("pi", one["expired"]), ("pi", two["open"])])
    assert outcome(store, order_id)["status"] == "awaiting_payment"
    apply_all(store, [("pi", one["expired"]), ("pi", one["open"])])  # late news of attempt 1
    assert outcome(store, order_id)["status"] == "awaiting_payment"
    apply_all(store, [("pi", two["paid"])])
    assert outcome(store, order_id)["status"] == "paid"


# -- a refund that fails after the parcel was stopped ---------------------------------------------

def test_a_failed_refund_resumes_the_stopped_parcel_in_every_order(store: Database) -> None:
    """The shop's own refund call answers first (pending); then the payment, the refund's
    events and its failure come in every order: the parcel ships after all, once."""
    results = []
    for ordering in itertools.permutations(range(3)):
        order_id = new_order(store, kind="physical", method="card", stock=5)
        apply_all(store, [("pi", pi(order_id, "succeeded", "card"))])
        apply_all(store, [("refund", refund(order_id, "pending"))])  # the create call's answer
        late = [("pi", pi(order_id, "succeeded", "card")), ("refund", refund(order_id, "pending")),
                ("refund", refund(order_id, "failed"))]
        apply_all(store, [late[i] for i in ordering])
        results.append(outcome(store, order_id))
    for result in results:
        assert (result["status"], result["shipment"], result["stock"]) == ("paid",
                                                                          "ready_to_ship", 4)
        assert result["mails"] == ["paid", "refund-1", "warehouse-cancel", "warehouse-resume",
                                   "warehouse-ship"]


def test_a_failed_refund_whose_item_was_sold_meanwhile_asks_a_person(store: Database) -> None:
    order_id = new_order(store, kind="physical", method="card", stock=1)
    apply_all(store, [("pi", pi(order_id, "succeeded", "card")),
                      ("refund", refund(order_id, "pending"))])
    stopped = outcome(store, order_id)
    assert (stopped["status"], stopped["shipment"], stopped["stock"]) == ("refunded", "canceled", 1)
    with store.transaction() as tx:  # the released item is sold to someone else
        tx.execute("UPDATE shop_stock SET available = 0 WHERE product_id = ?",
                   (f"prod_{order_id}",))
    apply_all(store, [("refund", refund(order_id, "failed"))] * 2)
    result = outcome(store, order_id)
    assert (result["status"], result["shipment"], result["stock"]) == ("paid", "needs_attention",
                                                                      0)
    assert "warehouse-attention" in result["mails"] and "warehouse-resume" not in result["mails"]
