"""Stock of physical items: reserved when an order is placed, given back when its payment does
not happen, taken again if the money (or a new voucher) comes after all, but only if the
items are still there. Products without a stock row (tickets, items sold live) are not
counted.

Each order says whether it holds its items (``shop_orders.stock_held``), and the flag is the
check of every move: an order gives back only what it holds and takes only what it lacks, so
no sequence of payments, expiries, refunds and late charges counts an item twice or takes the
shelf below zero. A late payment that finds the shelf empty leaves the order without its items;
its parcel then waits for a person (``shipments.create``).
"""

from __future__ import annotations

from typing import Any

from ichido import Transaction

SHIPPED_KINDS = ("physical", "live_item")


def reserve(tx: Transaction, product_id: str, initial: int | None, quantity: int) -> bool:
    """Take ``quantity`` if that many are left; False when they are not (nothing changes)."""
    if initial is None:
        return True
    tx.execute("INSERT INTO shop_stock (product_id, available) VALUES (?, ?)"
               " ON CONFLICT (product_id) DO NOTHING", (product_id, initial))
    return bool(tx.execute("UPDATE shop_stock SET available = available - ? WHERE product_id = ?"
                           " AND available >= ?", (quantity, product_id, quantity)).rowcount)


def release(tx: Transaction, order: dict[str, Any]) -> None:
    """Give the order's items back, if it holds them."""
    if order["kind"] not in SHIPPED_KINDS:
        return
    if tx.execute("UPDATE shop_orders SET stock_held = 0 WHERE id = ? AND stock_held = 1",
                  (order["id"],)).rowcount:
        tx.execute("UPDATE shop_stock SET available = available + ? WHERE product_id = ?",
                   (order["quantity"], order["product_id"]))


def take_if_left(tx: Transaction, order: dict[str, Any]) -> bool:
    """Take the order's items back only if they are still there (or are not counted); True
    when the order holds them afterwards."""
    if holds(tx, order):
        return True
    counted = tx.execute("SELECT available FROM shop_stock WHERE product_id = ?",
                         (order["product_id"],)).fetchone()
    taken = counted is None or bool(tx.execute(
        "UPDATE shop_stock SET available = available - ? WHERE product_id = ? AND available >= ?",
        (order["quantity"], order["product_id"], order["quantity"])).rowcount)
    if taken:
        tx.execute("UPDATE shop_orders SET stock_held = 1 WHERE id = ?", (order["id"],))
    return taken


def holds(tx: Transaction, order: dict[str, Any]) -> bool:
    """Whether the order has its items (always, for what is not counted)."""
    if order["kind"] not in SHIPPED_KINDS:
        return True
    row = tx.execute("SELECT stock_held FROM shop_orders WHERE id = ?", (order["id"],)).fetchone()
    return bool(row and row[0])


def available(tx: Transaction, product_id: str) -> int | None:
    row = tx.execute("SELECT available FROM shop_stock WHERE product_id = ?",
                     (product_id,)).fetchone()
    return None if row is None else int(row[0])
