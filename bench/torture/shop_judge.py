"""The shop torture's judge: wait until everything has settled, then compare what the shop
stored, what the local Stripe made and what was mailed with what exactly-once, in-order
processing gives.

- lost: events Stripe created that are not in the inbox as processed (or ignored);
- double effects: more than one PaymentIntent per order or Stripe refund per refund request,
  mail or fulfilment the final state does not justify, stock taken or given back twice;
- mismatched states: each order's status, entitlement, shipment and refunds against an in-order
  replay (every event in ``created`` order through the shop's handlers into a fresh SQLite);
- missing effects (an expected mail, refund or fulfilment that never happened), orders not
  ending as their story says, dead letters.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.torture.services import log
from bench.torture.shop_emulator import EmulatorProcess
from bench.torture.shop_plan import REACHED_PAID, SHIPPED, STOCK, Plan


class Judge:
    def __init__(self, emulator: EmulatorProcess, db_url: str, tmp: Path, plans: list[Plan],
                 aborting: threading.Event) -> None:
        self.emulator, self.db_url, self.tmp, self.plans = emulator, db_url, tmp, plans
        self.aborting = aborting

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db_url, connect_timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def settle(self, timeout: float) -> bool:
        """Wait until Stripe has nothing in flight, every event it made is stored and finished,
        and the outbox is empty; quiet for two seconds running. False on timeout."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        idle_since: float | None = None
        last_report = 0.0
        while time.monotonic() < deadline and not self.aborting.is_set():
            self.emulator.fire_due()
            state = self.emulator.status()
            created = state["events"]
            try:
                (stored, open_work), = self.query(
                    "SELECT count(*), count(*) FILTER (WHERE status IN"
                    " ('pending', 'processing', 'retrying')) FROM ichido_events")
                (unsent,), = self.query("SELECT count(*) FROM ichido_outbox WHERE status"
                                        " IN ('pending', 'processing', 'retrying')")
            except psycopg.Error:
                time.sleep(1)
                continue
            missing = created - stored
            sending = state["busy"]
            now = time.monotonic()
            idle_since = None if sending else (idle_since or now)
            gave_up_waiting = idle_since is not None and now - idle_since > 15
            busy = open_work or unsent or sending or (missing and not gave_up_waiting)
            if now - last_report > 10:
                log(f"settling: {created} events, {missing} not stored yet, {open_work} to "
                    f"process, {unsent} outbox messages to send")
                last_report = now
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > 2:
                return True
            time.sleep(0.5)
        return False

    def judge(self, seconds: float, settled: bool) -> dict[str, Any]:
        from ichido.config import Settings
        from ichido.db import open_database
        from ichido.schema import open_inbox

        stripe = self.emulator.dump(self.tmp / "stripe.json")
        events = stripe["events"]  # oldest first: the order Stripe made them in
        sent = stripe["stats"]
        store = open_database(Settings(database_url=self.db_url))
        try:
            inbox = open_inbox(Settings(database_url=self.db_url), store)
            stats = inbox.stats()
            inbox.close()
            with store.reading() as tx:
                stored = dict(tx.execute("SELECT id, status FROM ichido_events").fetchall())
                orders = {r[0]: r for r in tx.execute(
                    "SELECT id, product_id, kind, quantity, amount, payment_method, status,"
                    " payment_intent, voucher_url, email, created_at, updated_at, product_name,"
                    " idempotency_key, request_fingerprint FROM shop_orders").fetchall()}
                requests = tx.execute("SELECT id, order_id, amount FROM shop_refund_requests"
                                      ).fetchall()
                outbox = Counter(dict(tx.execute("SELECT status, count(*) FROM ichido_outbox"
                                                 " GROUP BY status").fetchall()))
                stock = dict(tx.execute("SELECT product_id, available FROM shop_stock"
                                        ).fetchall())
            live = read_states(store)
        finally:
            store.close()

        problems: list[str] = []
        lost_ids = [e["id"] for e in events if stored.get(e["id"]) not in ("processed", "ignored")]
        problems += [f"lost event {i} ({stored.get(i, 'never stored')})" for i in lost_ids[:20]]

        double: Counter = Counter()
        missing: Counter = Counter()
        intents = Counter(order_id for _, order_id in stripe["intents"])
        refunds_by_request = Counter(request_id for _, request_id, _ in stripe["refunds"])
        for order_id in orders:
            n = intents.get(order_id, 0)
            if n > 1:
                double["payment_intents"] += n - 1
                problems.append(f"{order_id}: {n} PaymentIntents at Stripe")
            elif n == 0:
                missing["payment_intents"] += 1
                problems.append(f"{order_id}: no PaymentIntent at Stripe")
        for request_id, order_id, _ in requests:
            n = refunds_by_request.get(request_id, 0)
            if n > 1:
                double["stripe_refunds"] += n - 1
                problems.append(f"{order_id}: refund request {request_id} made {n} refunds")
            elif n == 0:
                missing["stripe_refunds"] += 1
                problems.append(f"{order_id}: refund request {request_id} made no refund")
        stray = set(refunds_by_request) - {r[0] for r in requests}
        double["stray_refunds"] += len(stray)

        # Mail: exactly what the final state calls for, each once (the file name is its key).
        mails = Counter(p.name.removesuffix(".eml") for p in (self.tmp / "mail").glob("*.eml"))
        expected_mail = set()
        for order_id, row in orders.items():
            state = live.get(order_id, {})
            if row[5] == "konbini" and row[8]:
                expected_mail.add(f"{order_id}--voucher")
            if row[6] in REACHED_PAID:
                expected_mail.add(f"{order_id}--paid")
                if row[2] in SHIPPED:
                    expected_mail.add(f"{order_id}--warehouse-ship")
            if state.get("shipment") == "canceled":
                expected_mail.add(f"{order_id}--warehouse-cancel")
            for number in range(1, len(state.get("refunds") or []) + 1):  # one per refund
                expected_mail.add(f"{order_id}--refund-{number}")
        double["mail"] += sum(n - 1 for n in mails.values() if n > 1)
        double["unexpected_mail"] += len(set(mails) - expected_mail)
        missing["mail"] += len(expected_mail - set(mails))
        problems += [f"unexpected mail {m}" for m in sorted(set(mails) - expected_mail)[:10]]
        problems += [f"missing mail {m}" for m in sorted(expected_mail - set(mails))[:10]]
        missing["outbox_unsent"] += sum(n for status, n in outbox.items() if status != "processed")

        # Fulfilment: one entitlement / shipment for each order that was paid, none otherwise.
        for order_id, row in orders.items():
            state = live.get(order_id, {})
            paid = row[6] in REACHED_PAID
            wants_ent = paid and row[2] == "video_ticket"
            wants_ship = paid and row[2] in SHIPPED
            if (state.get("entitlement") is not None) != wants_ent:
                (missing if wants_ent else double)["entitlements"] += 1
                problems.append(f"{order_id}: entitlement {state.get('entitlement')} for {row[6]}")
            if (state.get("shipment") is not None) != wants_ship:
                (missing if wants_ship else double)["shipments"] += 1
                problems.append(f"{order_id}: shipment {state.get('shipment')} for {row[6]}")

        # Stock: taken once per order, given back once when the order lets it go.
        held = sum(row[3] for order_id, row in orders.items() if row[1] == "tour-tshirt" and (
            row[6] in ("created", "awaiting_payment", "paid", "partially_refunded")
            or (row[6] == "refunded" and live.get(order_id, {}).get("shipment") != "canceled")))
        if "tour-tshirt" in stock and stock["tour-tshirt"] != STOCK - held:
            double["stock"] += abs(STOCK - held - stock["tour-tshirt"])
            problems.append(f"stock of tour-tshirt is {stock['tour-tshirt']}, expected "
                            f"{STOCK - held}")

        # Final states against an in-order replay of every event.
        replayed = replay_states(self.tmp / "replay.db", list(orders.values()), events)
        mismatched = [o for o in orders if live.get(o) != replayed.get(o)]
        problems += [f"{o}: live {live.get(o)} but in-order replay {replayed.get(o)}"
                     for o in mismatched[:20]]

        # Each buyer's story, as planned.
        unexpected = []
        for plan in self.plans:
            if plan.error:
                unexpected.append(plan)
                problems.append(f"order #{plan.index}: {plan.error}")
                continue
            got = orders.get(plan.order_id or "")
            if got is None or got[6] != plan.expected_status():
                unexpected.append(plan)
                problems.append(f"order #{plan.index} {plan.order_id}: "
                                f"{got[6] if got else 'missing'}, planned {plan.expected_status()}")
        endpoints = sent["endpoints"].values()
        result = {
            "orders": len(self.plans),
            "events": len(events),
            "deliveries": sent["attempts"],
            "duplicate_copies_sent": sent["duplicates_sent"],

            "received": stats["received"],
            "unique": stats["unique"],
            "duplicates_cache": stats["duplicates_cache"],
            "duplicates_durable": stats["duplicates_durable"],
            "delivery_failures": sum(e["failed"] for e in endpoints),
            "gave_up": sum(e["gave_up"] for e in endpoints),
            "dead": stats["dead"],
            "lost": len(lost_ids),
            "double_effects": sum(double.values()),
            "missing_effects": sum(missing.values()),
            "mismatched_states": len(mismatched),
            "unexpected_outcomes": len(unexpected),
            "settled": settled,
            "seconds": round(seconds, 1),
            "events_per_second": round(len(events) / seconds, 1) if seconds else None,
            "double_effects_by_kind": {k: v for k, v in double.items() if v},
            "missing_effects_by_kind": {k: v for k, v in missing.items() if v},
            "problems": problems[:60],
        }
        return result


# -- reading and replaying states ----------------------------------------------

def read_states(store: Any) -> dict[str, dict[str, Any]]:
    """Each order's observable outcome: status, entitlement, shipment, refunds."""
    with store.reading() as tx:
        orders = tx.execute("SELECT id, status FROM shop_orders").fetchall()
        entitlements = {r[0]: "revoked" if r[1] is not None else "granted" for r in tx.execute(
            "SELECT order_id, revoked_at FROM shop_entitlements").fetchall()}
        shipments = dict(tx.execute("SELECT order_id, status FROM shop_shipments").fetchall())
        refunds: dict[str, list] = {}
        for order_id, refund_id, amount, status in tx.execute(
                "SELECT order_id, id, amount, status FROM shop_refunds").fetchall():
            refunds.setdefault(order_id, []).append((refund_id, int(amount), status))
    return {order_id: {"status": status, "entitlement": entitlements.get(order_id),
                       "shipment": shipments.get(order_id),
                       "refunds": sorted(refunds.get(order_id, []))}
            for order_id, status in orders}


def replay_states(path: Path, orders: list[tuple], events: list[dict[str, Any]]
                  ) -> dict[str, dict[str, Any]]:
    """Every event once, in the order Stripe created them, through the shop's own handlers, into
    a fresh SQLite store holding only the orders as they were placed: the states exactly-once,
    in-order processing gives. A handler asking to be retried later is, after the others."""
    from ichido.config import Settings
    from ichido.shop import events as shop_events
    from ichido.shop.schema import SHOP_SCHEMA
    from ichido.errors import RetryLater
    from ichido.event import Event
    from ichido.app import App
    from ichido.db import open_database
    from ichido.outbox import OUTBOX_SCHEMA

    settings = Settings(database_url=f"sqlite:///{path}")
    store = open_database(settings, steps=[*OUTBOX_SCHEMA, *SHOP_SCHEMA])
    app = App(settings, workers=0)  # never started: it only holds the handlers
    shop_events.register(app)  # what the shop registers on its app
    registry = app.handlers
    try:
        with store.transaction() as tx:
            tx.executemany(
                "INSERT INTO shop_orders (id, product_id, kind, quantity, amount, payment_method,"
                " status, email, created_at, updated_at, product_name, idempotency_key,"
                " request_fingerprint) VALUES (?, ?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?, ?)",
                [(r[0], r[1], r[2], r[3], r[4], r[5], r[9], r[10], r[11], r[12], r[13], r[14])
                 for r in orders])
            pending = [e for e in events if registry.for_type(e["type"])]
            for _ in range(5):
                later = []
                for doc in pending:
                    event = Event.from_body(orjson.dumps(doc))
                    tx.execute("SAVEPOINT one_event")
                    try:
                        for handler in registry.for_type(event.type):
                            handler(event, tx)
                    except RetryLater:
                        tx.execute("ROLLBACK TO one_event")
                        later.append(doc)
                    tx.execute("RELEASE one_event")
                pending = later
        return read_states(store)
    finally:
        store.close()
