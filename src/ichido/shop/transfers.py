"""A bank transfer's instructions and what is still owed, from Stripe's snapshots.

The instructions (``next_action.display_bank_transfer_instructions``) are mailed the first time
any snapshot shows them, as a konbini voucher is. ``amount_remaining`` only ever falls: each
new lowest figure before the order is paid is mailed once (``owed-<yen>``), and a late snapshot
with an older, higher figure changes nothing, so the buyer is never told of a debt already
paid down. Paid, nothing is owed.
"""

from __future__ import annotations

from typing import Any

import orjson

from ichido.db import Transaction
from ichido.outbox import enqueue
from ichido.shop import notices
from ichido.shop.messages import iso

_SHOWN = ("bank_name", "bank_code", "branch_name", "branch_code", "account_type",
          "account_number", "account_holder_name")


def record(tx: Transaction, order: dict[str, Any], instructions: dict[str, Any]) -> None:
    oid = order["id"]
    stored = tx.execute("UPDATE shop_orders SET transfer = ? WHERE id = ? AND transfer IS NULL",
                        (orjson.dumps(instructions).decode(), oid)).rowcount
    if stored:
        enqueue(tx, "mail", f"mail:{oid}:transfer", notices.transfer(order, instructions))
    left = instructions.get("amount_remaining")
    if not isinstance(left, int):
        return
    lower = tx.execute(
        "UPDATE shop_orders SET amount_remaining = ? WHERE id = ? AND status NOT IN"
        " ('paid', 'partially_refunded', 'refunded')"
        " AND (amount_remaining IS NULL OR amount_remaining > ?)", (left, oid, left)).rowcount
    if lower and 0 < left < int(order["amount"]):
        enqueue(tx, "mail", f"mail:{oid}:owed-{left}", notices.owed(order, left))


def settle(tx: Transaction, order: dict[str, Any]) -> None:
    """Paid: nothing is owed any more."""
    tx.execute("UPDATE shop_orders SET amount_remaining = 0 WHERE id = ?"
               " AND amount_remaining IS NOT NULL", (order["id"],))


def to_json(order: dict[str, Any]) -> dict[str, Any] | None:
    """The account to pay into and what is still owed, for the API and the dashboard."""
    if not order.get("transfer"):
        return None
    instructions = orjson.loads(order["transfer"])
    zengin = ((instructions.get("financial_addresses") or [{}])[0].get("zengin") or {})
    return {**{field: zengin.get(field) for field in _SHOWN},
            "reference": instructions.get("reference"),
            "hosted_instructions_url": instructions.get("hosted_instructions_url"),
            "amount_remaining": order["amount_remaining"],
            "hold_until": iso(order["hold_until"])}
