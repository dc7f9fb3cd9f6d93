"""Stock never goes below zero: an order that gave its items back (reaped, expired, declined)
and is then paid takes them again only if they are still there; otherwise its parcel waits
for a person, and every later move (a refund stopping the parcel) counts only what it holds."""

from __future__ import annotations

import random
import time
from typing import Any


from ichido.db import Database
from ichido.shop import order_view, orders, reaper, refunds, stock


def placed(store: Database, product: str, left: int) -> str:
    """A card order for the one ``product`` on the shelf (reserved), placed an hour ago."""
    order_id = f"ord_{random.getrandbits(64):x}"
    with store.transaction() as tx:
        assert stock.reserve(tx, product, left, 1)
        tx.execute("INSERT INTO shop_orders (id, product_id, product_name, kind, quantity, amount,"
                   " payment_method, email, status, created_at, updated_at) VALUES (?, ?, 'Poster',"
                   " 'physical', 1, 2000, 'card', 'b@example.com', 'created', ?, ?)",
                   (order_id, product, time.time() - 3600, time.time() - 3600))
    return order_id


def charged(store: Database, order_id: str) -> None:
    """Stripe's late news: the PaymentIntent succeeded after all (twice: a duplicate)."""
    for _ in range(2):
        with store.transaction() as tx:
            orders.apply_payment_intent(tx, {
                "id": f"pi_{order_id}", "status": "succeeded", "payment_method": "pm_1",
                "payment_method_types": ["card"], "metadata": {"order_id": order_id}})


def seen(store: Database, order_id: str, product: str) -> dict[str, Any]:
    with store.reading() as tx:
        order = order_view.to_json(tx, order_id)
        mails = sorted(r[0].rsplit(":", 1)[1] for r in tx.execute(
            "SELECT key FROM ichido_outbox WHERE key LIKE ?", (f"mail:{order_id}:%",)))
        left = stock.available(tx, product)
    assert order is not None
    return {"status": order["status"], "shipment": (order["shipment"] or {}).get("status"),
            "mails": mails, "left": left}


def test_a_reaped_order_charged_after_its_item_was_sold_asks_a_person_not_the_shelf(
        store: Database) -> None:
    product = f"poster-{random.getrandbits(32)}"
    late = placed(store, product, left=1)
    assert reaper.reap(store, ttl=60) == 1  # abandoned: the poster is back on the shelf
    sold = placed(store, product, left=1)  # ... and sold to someone else
    charged(store, sold)
    charged(store, late)
    assert seen(store, late, product) == {"status": "paid", "shipment": "needs_attention",
                                          "mails": ["paid", "warehouse-attention"], "left": 0}
    assert seen(store, sold, product)["shipment"] == "ready_to_ship"
    with store.transaction() as tx:  # the person refunds it: nothing comes back to the shelf
        refunds.apply_refund(tx, {"id": f"re_{late}", "amount": 2000, "status": "succeeded",
                                  "payment_intent": f"pi_{late}", "created": 1})
    assert seen(store, late, product)["left"] == 0


def test_a_reaped_order_charged_while_its_item_is_still_there_takes_it_and_ships(
        store: Database) -> None:
    product = f"poster-{random.getrandbits(32)}"
    late = placed(store, product, left=2)
    assert reaper.reap(store, ttl=60) == 1
    assert seen(store, late, product)["left"] == 2
    charged(store, late)
    assert seen(store, late, product) == {"status": "paid", "shipment": "ready_to_ship",
                                          "mails": ["paid", "warehouse-ship"], "left": 1}
