"""The shop end to end, over real HTTP: the emulator (a local Stripe, with 30% duplicate
deliveries and reordering) and `ichido serve --app ichido.shop.app:create_app` as a
subprocess, on loopback. Every lifecycle ends in its state with each effect exactly once:
one entitlement, one shipment, one mail file per message, one refund at Stripe per refund
request, one PaymentIntent per order. Then the same with the shop killed (-9) mid-way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.shop.conftest import CRASHING_APP, ShopWorld
from tests.support import wait_until

TICKET, SHIRT = "live-2026-12", "tour-tshirt"  # ¥1,500 video ticket; ¥3,500 physical, stock 20
SHIRT_STOCK = 20


@dataclass
class Expect:
    """What one order must end as."""

    status: str
    entitlement: str | None = None  # None, "granted" or "revoked"
    shipment: str | None = None
    mails: tuple[str, ...] = ()
    refunds: tuple[tuple[int, str], ...] = ()  # (amount, status) of each refund, by amount
    order_id: str = ""
    got: dict[str, Any] = field(default_factory=dict)


def entitlement_state(order: dict[str, Any]) -> str | None:
    ent = order["entitlement"]
    if ent is None:
        return None
    assert ent["granted_at"] is not None
    return "revoked" if ent["revoked_at"] is not None else "granted"


def check_exactly_once(world: ShopWorld, expected: dict[str, Expect]) -> None:
    """Every effect of every order happened exactly as often as it should; nothing else did."""
    world.settle()
    payment_intents = world.at_stripe("payment_intents")
    stripe_refunds = world.at_stripe("refunds")
    requests = dict(world.query("SELECT order_id, count(*) FROM shop_refund_requests"
                                " GROUP BY order_id"))
    outbox = world.outbox()
    problems = []
    for name, exp in expected.items():
        # Each refund tells the buyer once: refund-1, refund-2, ...
        mails = (*exp.mails, *(f"refund-{n}" for n in range(1, len(exp.refunds) + 1)))
        order = world.get(exp.order_id)
        exp.got = order
        got = {
            "status": order["status"],
            "entitlement": entitlement_state(order),
            "shipment": (order["shipment"] or {}).get("status"),
            "mail files": tuple(world.mails(exp.order_id)),
            "refunds": tuple(sorted((r["amount"], r["status"]) for r in order["refunds"])),
            "refunds at Stripe": stripe_refunds[exp.order_id],
            "refund requests": requests.get(exp.order_id, 0),
            "PaymentIntents at Stripe": payment_intents[exp.order_id],
            "entitlement rows": world.query("SELECT count(*) FROM shop_entitlements"
                                            " WHERE order_id = ?", (exp.order_id,))[0][0],
            "shipment rows": world.query("SELECT count(*) FROM shop_shipments"
                                         " WHERE order_id = ?", (exp.order_id,))[0][0],
            "mail rows in the outbox, all sent": sorted(
                key.rsplit(":", 1)[1] for key, (kind, status, _) in outbox.items()
                if kind == "mail" and key.split(":")[1] == exp.order_id and status == "processed"),
        }
        want = {
            "status": exp.status, "entitlement": exp.entitlement, "shipment": exp.shipment,
            "mail files": tuple(sorted(mails)), "refunds": tuple(sorted(exp.refunds)),
            "refunds at Stripe": len(exp.refunds), "refund requests": len(exp.refunds),
            "PaymentIntents at Stripe": 1,
            "entitlement rows": 0 if exp.entitlement is None else 1,
            "shipment rows": 0 if exp.shipment is None else 1,
            "mail rows in the outbox, all sent": sorted(mails),
        }
        problems += [f"{name} ({exp.order_id}): {what} is {got[what]!r}, expected {want[what]!r}"
                     for what in want if got[what] != want[what]]
    # Nothing at Stripe or in the mailbox that belongs to no order of ours.
    ours = {exp.order_id for exp in expected.values()}
    problems += [f"PaymentIntent for unknown order {o}" for o in payment_intents if o not in ours]
    problems += [f"mail about unknown order {p.name}" for p in world.mail_dir.glob("*.eml")
                 if p.name.split("--")[0] not in ours]
    stats = world.store.stats()
    if stats["dead"]:
        problems.append(f"{stats['dead']} event(s) dead-lettered")
    not_sent = {k: v for k, v in outbox.items() if v[1] != "processed"}
    if not_sent:
        problems.append(f"outbox rows not sent: {not_sent}")
    assert not problems, "\n".join(problems)


def voucher_of(response_body: dict[str, Any]) -> dict[str, Any]:
    voucher = response_body["voucher"]
    assert voucher is not None, response_body
    # For operators: ISO 8601 with an offset, never bare Unix seconds.
    assert voucher["url"].startswith("http") and voucher["expires_at"].endswith("+00:00")
    assert voucher["stores"] and all(codes.get("payment_code")
                                     for codes in voucher["stores"].values())
    return voucher


def wait_refund_requires_action(world: ShopWorld, order_id: str, amount: int) -> str:
    """The konbini refund waits for the buyer's bank details; its id."""
    order = world.wait_order(order_id, lambda o: any(
        r["amount"] == amount and r["status"] == "requires_action" for r in o["refunds"]),
        f"a ¥{amount} refund asking for bank details")
    return next(r["id"] for r in order["refunds"]
                if r["amount"] == amount and r["status"] == "requires_action")


def test_every_lifecycle_has_each_effect_exactly_once(database_url: str, make_world) -> None:
    """Konbini paid and expired, card paid and declined, full and partial refunds of card and
    of konbini, with duplicated and reordered webhooks, on every backend."""
    world: ShopWorld = make_world(database_url)
    buyer = "buyer@example.com"
    exp = {
        "konbini paid": Expect("paid", entitlement="granted", mails=("voucher", "paid")),
        "konbini expired": Expect("expired", mails=("voucher",)),
        "card paid": Expect("paid", shipment="ready_to_ship", mails=("paid", "warehouse-ship")),
        "card declined": Expect("failed"),
        "card partial, then the rest": Expect("refunded", entitlement="revoked", mails=("paid",),
                                              refunds=((500, "succeeded"), (1000, "succeeded"))),
        "card partial": Expect("partially_refunded", shipment="ready_to_ship",
                               mails=("paid", "warehouse-ship"), refunds=((1000, "succeeded"),)),
        "konbini full": Expect("refunded", shipment="canceled",
                               mails=("voucher", "paid", "warehouse-ship", "warehouse-cancel"),
                               refunds=((3500, "succeeded"),)),
        "konbini partial": Expect("partially_refunded", entitlement="granted",
                                  mails=("voucher", "paid"), refunds=((500, "succeeded"),)),
    }

    # Orders. Konbini answers with the voucher at once; a declined card is a 402 and `failed`.
    konbini = {}
    for name, product in (("konbini paid", TICKET), ("konbini expired", SHIRT),
                          ("konbini full", SHIRT), ("konbini partial", TICKET)):
        body = world.placed(product=product, payment_method="konbini", email=buyer)
        assert body["status"] == "awaiting_payment" and body["payment_method"] == "konbini"
        assert body["entitlement"] is None and body["shipment"] is None  # nothing before paid
        voucher_of(body)
        exp[name].order_id, konbini[name] = body["id"], body["payment_intent"]
    for name, product in (("card paid", SHIRT), ("card partial, then the rest", TICKET),
                          ("card partial", SHIRT)):
        body = world.placed(product=product, payment_method="card", email=buyer,
                            payment_method_id="pm_card_visa")
        assert body["status"] == "paid" and body["voucher"] is None
        exp[name].order_id = body["id"]
    declined = world.order(product=SHIRT, payment_method="card", email=buyer,
                           payment_method_id="pm_card_chargeDeclined")
    assert declined.status_code == 402, declined.text
    assert declined.json()["status"] == "failed" and declined.json()["failure"]
    exp["card declined"].order_id = declined.json()["id"]

    # The buyers go to the konbini (or do not); the webhooks tell the shop.
    for name in ("konbini paid", "konbini full", "konbini partial"):
        world.control(f"payment_intents/{konbini[name]}/pay", store="lawson")
    world.control(f"payment_intents/{konbini['konbini expired']}/expire")
    for name in ("konbini paid", "konbini full", "konbini partial"):
        world.wait_status(exp[name].order_id, "paid")
    world.wait_status(exp["konbini expired"].order_id, "expired")

    # Refunds: card ones succeed at once, konbini ones wait for bank details. (Amounts are
    # explicit: a refund without one fails on PostgreSQL, see test_orders_api.py.)
    for name, amount in (("card partial, then the rest", 500), ("card partial", 1000),
                         ("konbini full", 3500), ("konbini partial", 500),
                         ("card partial, then the rest", 1000)):
        response = world.refund(exp[name].order_id, amount)
        assert response.status_code == 202, response.text
        assert response.json()["refund_request"]["amount"] == amount
    for name, amount in (("konbini full", 3500), ("konbini partial", 500)):
        refund_id = wait_refund_requires_action(world, exp[name].order_id, amount)
        world.control(f"refunds/{refund_id}/bank_details", account_number="0001234")
    for name, e in exp.items():
        world.wait_order(e.order_id, lambda o, e=e: o["status"] == e.status and sorted(
            (r["amount"], r["status"]) for r in o["refunds"]) == sorted(e.refunds),
            f"{name}: {e.status} with refunds {e.refunds}")

    check_exactly_once(world, exp)
    # Stock: expired and declined orders gave theirs back, and so did the refunded shirt
    # that never shipped; the two shirts still to ship hold one each.
    assert world.query("SELECT available FROM shop_stock WHERE product_id = ?",
                       (SHIRT,)) == [(SHIRT_STOCK - 2,)]
    stats = world.store.stats()
    assert stats["duplicates_cache"] + stats["duplicates_durable"] > 0, \
        f"the emulator sent no duplicates, so this run proved less than it claims: {stats}"


# -- a shop killed mid-way ------------------------------------------------------------------------

def start_again(world: ShopWorld, *, may_die: bool = False) -> None:
    assert world.process is not None
    world.process.start(may_die=may_die)


def died_by_sigkill(world: ShopWorld) -> None:
    assert world.process is not None
    code = world.process.wait_exit()
    assert code == -9, f"the shop exited {code}, not by SIGKILL:\n{world.process.output()}"


def test_shop_killed_inside_an_event_a_mail_send_and_a_refund_call_still_does_each_once(
        sqlite_url: str, make_world, tmp_path: Path) -> None:
    """The process dies (SIGKILL) three times, each at the worst moment: with an event's
    effects written but not committed; with a mail written but its outbox row not marked sent;
    with a refund made at Stripe but not yet known to the database. Restarted on the same
    database each time (ICHIDO_LEASE=1s), it ends with exactly one of everything."""
    markers = tmp_path / "crashed"
    markers.mkdir()
    world: ShopWorld = make_world(sqlite_url, app=CRASHING_APP, env={
        "ICHIDO_LEASE": "1s", "ICHIDO_TEST_CRASH_AT": "handler,mail,refund",
        "ICHIDO_TEST_CRASH_DIR": str(markers)})
    assert world.process is not None
    exp = {"ticket": Expect("refunded", entitlement="revoked", mails=("voucher", "paid"),
                            refunds=((1500, "succeeded"),)),
           "shirt": Expect("paid", shipment="ready_to_ship", mails=("paid", "warehouse-ship"))}
    ticket = world.placed(product=TICKET, payment_method="konbini", email="fan@example.com")
    exp["ticket"].order_id = ticket["id"]
    world.wait_order(ticket["id"], lambda o: "voucher" in world.mails(o["id"]), "voucher mail")
    exp["shirt"].order_id = world.placed(product=SHIRT, payment_method="card",
                                         email="shopper@example.com")["id"]

    # 1. Killed inside the transaction of the payment event: nothing of it may stay.
    world.control(f"payment_intents/{ticket['payment_intent']}/pay", store="familymart")
    died_by_sigkill(world)
    assert (markers / "handler").exists()
    assert world.query("SELECT count(*) FROM shop_entitlements WHERE order_id = ?",
                       (ticket["id"],)) == [(0,)], "an uncommitted effect survived the crash"

    # 2. Restarted: the event is claimed again once its lease ends; the paid mail is written,
    # and the process dies before the outbox hears it was sent.
    start_again(world, may_die=True)
    died_by_sigkill(world)
    assert (markers / "mail").exists() and "paid" in world.mails(ticket["id"])
    assert world.query("SELECT status FROM ichido_outbox WHERE key = ?",
                       (f"mail:{ticket['id']}:paid",)) == [("processing",)]  # leased

    # 3. Restarted: the mail is sent again with the same key (one file); a refund is asked for,
    # Stripe makes it, and the process dies before the database learns of it.
    start_again(world)
    world.wait_order(ticket["id"], lambda o: o["status"] == "paid" and world.outbox().get(
        f"mail:{o['id']}:paid", ("", ""))[1] == "processed", "the paid mail marked processed")
    key = f"refund-{uuid.uuid4()}"
    try:
        accepted = world.refund(ticket["id"], key=key)
        assert accepted.status_code == 202, accepted.text
    except httpx.HTTPError:
        pass  # the process died before answering; the request was committed before the call
    died_by_sigkill(world)
    assert (markers / "refund").exists()
    assert world.at_stripe("refunds")[ticket["id"]] == 1

    # 4. Restarted: the outbox calls Stripe again with the same idempotency key and gets the
    # same refund back. The client retrying with its key gets the same request back.
    start_again(world)
    again = world.refund(ticket["id"], key=key)
    assert again.status_code == 202, again.text
    refund_id = wait_refund_requires_action(world, ticket["id"], 1500)
    world.control(f"refunds/{refund_id}/bank_details", account_number="0001234")
    world.wait_order(ticket["id"], lambda o: [r["status"] for r in o["refunds"]] == ["succeeded"],
                     "the refund paid out")
    world.wait_status(exp["shirt"].order_id, "paid")
    check_exactly_once(world, exp)
    assert world.process.starts == 4


def test_shop_killed_by_signal_while_webhooks_are_in_flight_restarts_with_each_effect_once(
        sqlite_url: str, make_world) -> None:
    """kill -9 from outside while payment events are arriving and being processed; the same
    shop restarted on the same database finishes every order with each effect once.
    (The crashing app with no crash point: only for its outbox lease that follows
    ICHIDO_LEASE, else a mail claimed at the kill waits 60 s; see test_outbox.py.)"""
    world: ShopWorld = make_world(sqlite_url, app=CRASHING_APP, env={"ICHIDO_LEASE": "1s"})
    assert world.process is not None
    exp: dict[str, Expect] = {}
    vouchers = []
    for n in range(3):
        body = world.placed(product=TICKET, payment_method="konbini", email=f"fan{n}@example.com")
        exp[f"ticket {n}"] = Expect("paid", entitlement="granted", mails=("voucher", "paid"),
                                    order_id=body["id"])
        vouchers.append(body["payment_intent"])
    for n in range(2):
        body = world.placed(product=SHIRT, payment_method="card", email=f"shop{n}@example.com")
        exp[f"shirt {n}"] = Expect("paid", shipment="ready_to_ship",
                                   mails=("paid", "warehouse-ship"), order_id=body["id"])
    for pi in vouchers:
        world.control(f"payment_intents/{pi}/pay")
    # Kill as soon as the first payment lands, while the others are in flight.
    wait_until(lambda: any(world.get(e.order_id)["status"] == "paid"
                           for e in exp.values() if e.entitlement), timeout=60, interval=0.01,
               message="a first konbini payment")
    world.process.kill()
    start_again(world)
    for e in exp.values():
        world.wait_status(e.order_id, "paid")
    check_exactly_once(world, exp)
