"""Subscriptions end to end with the shop as a real process that is killed (SIGKILL) mid-way:
the emulator's Billing over HTTP, duplicated (30%) and reordered webhooks, the official SDK.
Each story ends with exactly one grant, one revoke and one of each mail: the access change rows,
the mail files and the outbox rows all say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import httpx

from ichido.shop import access
from tests.shop.conftest import CRASHING_APP, DEADLINE, ShopWorld
from tests.shop.test_shop_e2e import died_by_sigkill, start_again
from tests.shop.test_subscriptions import PLANS, to_next_period
from tests.support import wait_until

GRACE = 3 * 86400


def crashing_world(make_world: Any, sqlite_url: str, tmp_path: Path, points: str) -> ShopWorld:
    markers = tmp_path / "crashed"
    markers.mkdir()
    return make_world(sqlite_url, app=CRASHING_APP, catalog_toml=PLANS, env={
        "ICHIDO_LEASE": "1s", "ICHIDO_TEST_CRASH_AT": points,
        "ICHIDO_TEST_CRASH_DIR": str(markers), "ICHIDO_SUBSCRIPTION_GRACE": "3d"})


def subscribe(world: ShopWorld, key: str, **body: Any) -> dict[str, Any] | None:
    """POST /subscriptions; None when the shop died before answering (retry with the key)."""
    try:
        response = world.http.post("/subscriptions", json=body, headers={"Idempotency-Key": key})
    except httpx.HTTPError:
        return None
    assert response.status_code == 201, response.text
    return response.json()


def wait_sub(world: ShopWorld, sub_id: str, check: Callable[[dict[str, Any]], Any],
             what: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ready() -> bool:
        try:
            response = world.http.get(f"/subscriptions/{sub_id}")
        except httpx.HTTPError:
            return False  # restarting
        found.clear()
        found.update(response.json())
        return response.status_code == 200 and bool(check(found))

    wait_until(ready, timeout=DEADLINE, interval=0.05, message=f"{sub_id}: {what} ({found})")
    return dict(found)


def check_once(world: ShopWorld, sub_id: str, changes: list[str], mails: list[str]) -> None:
    """Nothing in flight; every access change and every mail exactly once, all sent."""
    world.settle()
    got_changes = sorted(f"{r[0]}:{r[1]}" for r in world.query(
        "SELECT change, cause FROM shop_access_changes WHERE subscription_id = ?", (sub_id,)))
    files = sorted(p.name.split("--", 1)[1].removesuffix(".eml")
                   for p in world.mail_dir.glob(f"{sub_id}--*.eml"))
    sent = sorted(key.split(":", 2)[2] for key, (kind, status, _) in world.outbox().items()
                  if kind == "mail" and key.startswith(f"mail:{sub_id}:") and status == "processed")
    assert (got_changes, files, sent) == (sorted(changes), sorted(mails), sorted(mails))
    assert world.query("SELECT count(*) FROM shop_subscription_access") == [(1,)]
    made = world.stripe.get("/v1/subscriptions", params={"status": "all"}).json()["data"]
    assert len(made) == 1  # the client's retry after the kill made no second one
    assert world.store.stats()["dead"] == 0
    assert all(status == "processed" for _, status, _ in world.outbox().values())


def test_a_card_plan_over_three_renewals_one_failing_with_the_shop_killed_twice(
        sqlite_url: str, make_world: Any, tmp_path: Path) -> None:
    world = crashing_world(make_world, sqlite_url, tmp_path, "grant")
    body = {"plan": "stream-monthly", "payment_method": "card", "email": "v@example.com"}
    made = subscribe(world, "card-1", **body)  # the first invoice is paid at once: the grant
    died_by_sigkill(world)  # ... killed inside an invoice.paid transaction, after the grant
    start_again(world)
    sub = subscribe(world, "card-1", **body) or {}  # the client retries with its key
    assert made is None or made["id"] == sub["id"]
    stripe_id = sub["stripe_subscription"]
    wait_sub(world, sub["id"], lambda s: s["entitlement"] and s["status"] == "active", "granted")
    to_next_period(world, stripe_id)  # renewal 1: paid
    wait_sub(world, sub["id"], lambda s: [i["status"] for i in s["invoices"]] == ["paid"] * 2,
             "renewal 1 paid")
    world.stripe.post(f"/v1/subscriptions/{stripe_id}",
                      data={"default_payment_method": "pm_card_chargeDeclined"})
    to_next_period(world, stripe_id)  # renewal 2: declined
    failing = wait_sub(world, sub["id"], lambda s: s["status"] == "past_due"
                       and len(s["invoices"]) == 3, "past due")
    world.process.kill()  # from outside, while the renewal's events are still arriving
    start_again(world)
    world.control(f"invoices/{failing['invoices'][-1]['id']}/pay")  # the buyer fixes the card
    world.stripe.post(f"/v1/subscriptions/{stripe_id}",
                      data={"default_payment_method": "pm_card_visa"})
    wait_sub(world, sub["id"], lambda s: s["status"] == "active"
             and s["invoices"][-1]["status"] == "paid", "recovered")
    to_next_period(world, stripe_id)  # renewal 3: paid
    wait_sub(world, sub["id"], lambda s: len(s["invoices"]) == 4
             and s["invoices"][-1]["status"] == "paid", "renewal 3 paid")
    world.stripe.delete(f"/v1/subscriptions/{stripe_id}")
    ended = wait_sub(world, sub["id"], lambda s: s["status"] == "canceled"
                     and s["entitlement"]["revoked_at"], "revoked")
    assert ended["entitlement"]["reason"] == "ended"
    assert [i["status"] for i in ended["invoices"]] == ["paid"] * 4
    check_once(world, sub["id"], ["granted:paid", "revoked:final"], ["access-ended"])
    assert world.process.starts == 3


def test_a_konbini_plan_whose_second_invoice_is_never_paid_with_the_shop_killed(
        sqlite_url: str, make_world: Any, tmp_path: Path) -> None:
    """Killed after the first voucher mail is written, before it is marked sent. The second
    invoice is never paid: past its due date plus the grace period the sweep (run here, in
    another process than the shop's, at Stripe's clock) suspends access once, twice over; the
    end of dunning then revokes it for good."""
    world = crashing_world(make_world, sqlite_url, tmp_path, "invoice-mail")
    body = {"plan": "stream-konbini", "payment_method": "konbini",
            "email": "fill_never@example.com"}  # no voucher pays by itself
    sub = subscribe(world, "konbini-1", **body)
    died_by_sigkill(world)  # the first voucher's mail written, not marked sent
    start_again(world)
    sub = subscribe(world, "konbini-1", **body) or sub or {}
    first = wait_sub(world, sub["id"], lambda s: s["invoices"] and s["invoices"][0]["voucher"],
                     "the first voucher")
    world.control(f"invoices/{first['invoices'][0]['id']}/pay", store="lawson")
    wait_sub(world, sub["id"], lambda s: s["entitlement"], "granted")
    to_next_period(world, sub["stripe_subscription"])
    second = wait_sub(world, sub["id"], lambda s: len(s["invoices"]) == 2
                      and s["invoices"][1]["voucher"], "the second voucher")
    unpaid = second["invoices"][1]["id"]
    due = world.stripe.get(f"/v1/invoices/{unpaid}").json()["due_date"]
    world.control("clock/advance", seconds=due - world.control("clock/advance", seconds=0)["now"]
                  + 3600)  # overdue: Stripe says so, the subscription goes past_due
    wait_sub(world, sub["id"], lambda s: s["status"] == "past_due", "past due")
    assert access.sweep(world.store, GRACE, now=due + GRACE - 60) == 0  # still in grace
    assert access.sweep(world.store, GRACE, now=due + GRACE + 60) == 1
    assert access.sweep(world.store, GRACE, now=due + GRACE + 120) == 0
    on_hold = wait_sub(world, sub["id"], lambda s: s["entitlement"]["revoked_at"], "suspended")
    assert on_hold["entitlement"]["reason"] == "unpaid"
    world.control(f"invoices/{unpaid}/lapse")  # dunning ends: Stripe cancels
    ended = wait_sub(world, sub["id"], lambda s: s["status"] == "canceled"
                     and s["entitlement"]["reason"] == "ended", "revoked")
    assert ended["entitlement"]["revoked_at"] == on_hold["entitlement"]["revoked_at"]
    invoices = [i["id"] for i in ended["invoices"]]
    check_once(world, sub["id"], ["granted:paid", f"suspended:{unpaid}", "revoked:final"],
               [*(f"invoice-{i}" for i in invoices), f"access-suspended-{unpaid}",
                "access-ended"])
    assert world.process.starts == 2


def test_a_paid_invoice_refunded_in_full_revokes_and_cancels_at_stripe_once(
        make_world: Any, sqlite_url: str) -> None:
    """An operator refunds a subscriber's invoice in full (the Dashboard, or the API as here):
    access is revoked for good and the shop cancels the subscription at Stripe, once. A partial
    refund of another subscriber's invoice changes nothing."""
    world = make_world(sqlite_url, mode="thread", catalog_toml=PLANS)
    subs = {}
    for name in ("full", "partial"):
        made = subscribe(world, name, plan="stream-monthly", payment_method="card",
                         email=f"{name}@example.com")
        assert made is not None
        subs[name] = wait_sub(world, made["id"], lambda s: s["entitlement"], "granted")
    for name, amount in (("full", 980), ("partial", 300)):
        invoice = world.stripe.get(f"/v1/invoices/{subs[name]['invoices'][0]['id']}",
                                   params={"expand[]": "payments"}).json()
        paid_by = invoice["payments"]["data"][0]["payment"]["payment_intent"]  # since basil
        refund = world.stripe.post("/v1/refunds", data={
            "payment_intent": paid_by, "amount": amount})
        assert refund.status_code == 200, refund.text
    ended = wait_sub(world, subs["full"]["id"], lambda s: s["status"] == "canceled"
                     and s["entitlement"]["revoked_at"], "revoked and canceled at Stripe")
    assert ended["entitlement"]["reason"] == "refunded"
    world.settle()
    kept = wait_sub(world, subs["partial"]["id"], lambda s: s["entitlement"], "kept")
    assert kept["status"] == "active" and kept["entitlement"]["revoked_at"] is None
    at_stripe = world.stripe.get(f"/v1/subscriptions/{subs['full']['stripe_subscription']}")
    assert at_stripe.json()["status"] == "canceled"
    assert world.outbox()[f"ichido-cancel-{subs['full']['id']}"][1:] == ("processed", 1)
    assert world.query("SELECT change, cause FROM shop_access_changes WHERE subscription_id = ?"
                       " ORDER BY change", (subs["full"]["id"],)) == [
        ("granted", "paid"), ("revoked", "final")]
    assert sorted(p.name for p in world.mail_dir.glob(f"{subs['full']['id']}--*.eml")) == [
        f"{subs['full']['id']}--access-ended.eml"]
