"""The order as the API, the CLI and the dashboard show it: a read of the order's rows, apart
from the state machine (``orders``) that writes them.
"""

from __future__ import annotations

from typing import Any

import orjson

from ichido import Transaction
from ichido.shop import transfers
from ichido.shop.messages import iso
from ichido.shop.orders import load


def to_json(tx: Transaction, order_id: str) -> dict[str, Any] | None:
    """The order as the API and the CLI show it."""
    order = load(tx, order_id)
    if order is None:
        return None
    entitlement = tx.execute("SELECT granted_at, revoked_at FROM shop_entitlements"
                             " WHERE order_id = ?", (order_id,)).fetchone()
    shipment = tx.execute("SELECT status FROM shop_shipments WHERE order_id = ?",
                          (order_id,)).fetchone()
    refunds = tx.execute("SELECT id, amount, status, next_action FROM shop_refunds"
                         " WHERE order_id = ? ORDER BY created, id", (order_id,)).fetchall()
    voucher = None
    if order["voucher_url"]:
        voucher = {"url": order["voucher_url"], "expires_at": iso(order["voucher_expires_at"]),
                   "stores": orjson.loads(order["voucher_stores"] or "{}")}
    return {
        "id": order["id"], "status": order["status"], "product": order["product_id"],
        "quantity": order["quantity"], "amount": order["amount"], "currency": "jpy",
        "payment_method": order["payment_method"], "payment_intent": order["payment_intent"],
        "email": order["email"], "locale": order["locale"], "voucher": voucher,
        "failure": order["failure"],
        "entitlement": None if entitlement is None else
        {"granted_at": iso(entitlement[0]), "revoked_at": iso(entitlement[1])},
        "shipment": None if shipment is None else {"status": shipment[0]},
        "checkout": None if not order["checkout_session"] else
        {"id": order["checkout_session"], "url": order["checkout_url"]},
        "redirect_url": order["redirect_url"], "transfer": transfers.to_json(order),
        "hold_until": iso(order["hold_until"]),
        "refunds": [{"id": r[0], "amount": r[1], "status": r[2],
                     "next_action": orjson.loads(r[3]) if r[3] else None} for r in refunds],
        "created_at": iso(order["created_at"]), "updated_at": iso(order["updated_at"]),
    }


def recent(tx: Transaction, limit: int = 50) -> list[str]:
    return [row[0] for row in tx.execute(
        "SELECT id FROM shop_orders ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()]
