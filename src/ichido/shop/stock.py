"""Stock of physical items: reserved when an order is placed, given back when its payment does
not happen, taken again if the money (or a new voucher) comes after all. Products without a
stock row (tickets, items sold live) are not counted."""

from __future__ import annotations

from typing import Any

from ichido.db.base import Transaction

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
    if order["kind"] in SHIPPED_KINDS:
        tx.execute("UPDATE shop_stock SET available = available + ? WHERE product_id = ?",
                   (order["quantity"], order["product_id"]))


def take(tx: Transaction, order: dict[str, Any]) -> None:
    """Take the order's items back even below zero: the buyer paid, a person must know."""
    if order["kind"] in SHIPPED_KINDS:
        tx.execute("UPDATE shop_stock SET available = available - ? WHERE product_id = ?",
                   (order["quantity"], order["product_id"]))


def take_if_left(tx: Transaction, order: dict[str, Any]) -> bool:
    """Take the order's items back only if they are still there (or are not counted)."""
    if order["kind"] not in SHIPPED_KINDS:
        return True
    counted = tx.execute("SELECT available FROM shop_stock WHERE product_id = ?",
                         (order["product_id"],)).fetchone()
    if counted is None:
        return True
    return bool(tx.execute("UPDATE shop_stock SET available = available - ? WHERE product_id = ?"
                           " AND available >= ?", (order["quantity"], order["product_id"],
                                                   order["quantity"])).rowcount)


def available(tx: Transaction, product_id: str) -> int | None:
    row = tx.execute("SELECT available FROM shop_stock WHERE product_id = ?",
                     (product_id,)).fetchone()
    return None if row is None else int(row[0])
