"""A paid physical item's parcel: ready to ship, stopped when the order is fully refunded, and
resumed if that refund then fails (the buyer paid after all). A parcel is resumed only if its
item can be taken from stock again; otherwise it waits for a person (``needs_attention``).

Each stop and resume tells the warehouse once; the ``stops`` count numbers the notices of a
second or later cycle (``warehouse-cancel-2``), so no notice is swallowed as a duplicate.
"""

from __future__ import annotations

from typing import Any

from ichido import Transaction
from ichido.outbox import enqueue
from ichido.shop import notices, stock


def create(tx: Transaction, order: dict[str, Any], now: float) -> None:
    """Ready to ship if the order holds its items; else (paid after it gave them back, and they
    were sold meanwhile) a person decides: restock, or refund. Not refunded automatically: the
    item may be back on the shelf tomorrow, and a refund cannot be undone."""
    status = "ready_to_ship" if stock.holds(tx, order) else "needs_attention"
    created = tx.execute("INSERT INTO shop_shipments (order_id, status, created_at, updated_at)"
                         " VALUES (?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
                         (order["id"], status, now, now)).rowcount
    if created:
        _notify(tx, order, "ship" if status == "ready_to_ship" else "attention", now)


def stop(tx: Transaction, order: dict[str, Any], now: float) -> None:
    stopped = tx.execute("UPDATE shop_shipments SET status = 'canceled', stops = stops + 1,"
                         " updated_at = ? WHERE order_id = ? AND status = 'ready_to_ship'",
                         (now, order["id"])).rowcount
    if stopped:
        _notify(tx, order, "cancel", now, _suffix(tx, order["id"]))
        stock.release(tx, order)


def resume(tx: Transaction, order: dict[str, Any], now: float) -> None:
    """The refund that stopped the parcel failed: ship after all, or ask a person."""
    row = tx.execute("SELECT status FROM shop_shipments WHERE order_id = ?",
                     (order["id"],)).fetchone()
    if row is None or row[0] != "canceled":
        return
    resumed = stock.take_if_left(tx, order)
    status = "ready_to_ship" if resumed else "needs_attention"
    tx.execute("UPDATE shop_shipments SET status = ?, updated_at = ? WHERE order_id = ?",
               (status, now, order["id"]))
    _notify(tx, order, "resume" if resumed else "attention", now, _suffix(tx, order["id"]))


def _suffix(tx: Transaction, order_id: str) -> str:
    stops = int(tx.execute("SELECT stops FROM shop_shipments WHERE order_id = ?",
                           (order_id,)).fetchone()[0])
    return "" if stops <= 1 else f"-{stops}"


def _notify(tx: Transaction, order: dict[str, Any], action: str, now: float,
            suffix: str = "") -> None:
    enqueue(tx, "mail", f"mail:{order['id']}:warehouse-{action}{suffix}",
            notices.warehouse(order, action, now))
