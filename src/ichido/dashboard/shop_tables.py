"""The shop's state, for its part of the page: read with SQL when the shop's tables are there.

The core never imports the shop. Whether its tables exist is the ``shop`` schema component's
applied version; what it earns in fees comes from Stripe, so the shop registers that report as
a plain callable (``App.fee_report``) rather than the dashboard reaching into it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ichido.dashboard.reading import Store, schema_version

JST = dt.timezone(dt.timedelta(hours=9), "JST")  # konbini vouchers expire at 23:59 in Japan
# The shop's ``fees report`` rows ({"method", "gross", "fees", ...}), or None: no report here.
FeeReport = Callable[[], Iterable[Mapping[str, Any]] | None]
ORDER_COLUMNS = ("id, product_name, amount, payment_method, status, voucher_expires_at,"
                 " payment_intent, created_at")


@dataclass(frozen=True)
class Order:
    id: str
    product_name: str
    amount: int
    payment_method: str
    status: str
    voucher_expires_at: int | None
    payment_intent: str | None
    created_at: float


@dataclass(frozen=True)
class Refund:
    id: str
    order_id: str
    amount: int
    status: str
    created: int


def has_shop(db: Store) -> bool:
    return schema_version(db, "shop") >= 1


def today_in_japan(now: float) -> tuple[float, float]:
    day = dt.datetime.fromtimestamp(now, JST).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp(), (day + dt.timedelta(days=1)).timestamp()


def shop_state(db: Store, now: float, limit: int = 50) -> dict[str, Any]:
    start, end = today_in_japan(now)
    with db.reading() as tx:
        awaiting = tx.execute(f"SELECT {ORDER_COLUMNS} FROM shop_orders WHERE status ="
                              " 'awaiting_payment' ORDER BY voucher_expires_at LIMIT ?",
                              (limit,)).fetchall()
        expiring = tx.execute(f"SELECT {ORDER_COLUMNS} FROM shop_orders WHERE status ="
                              " 'awaiting_payment' AND voucher_expires_at >= ? AND"
                              " voucher_expires_at < ? ORDER BY voucher_expires_at LIMIT ?",
                              (int(start), int(end), limit)).fetchall()
        refunds = tx.execute("SELECT id, order_id, amount, status, created FROM shop_refunds"
                             " WHERE status = 'requires_action' ORDER BY created LIMIT ?",
                             (limit,)).fetchall()
    return {"awaiting": [Order(*row) for row in awaiting],
            "expiring": [Order(*row) for row in expiring],
            "refunds": [Refund(*row) for row in refunds]}


def order_for(db: Store, payment_intent: str | None) -> Order | None:
    """The order a payment's events belong to, for the event's page."""
    if not payment_intent or not has_shop(db):
        return None
    with db.reading() as tx:
        row = tx.execute(f"SELECT {ORDER_COLUMNS} FROM shop_orders WHERE payment_intent = ?",
                         (payment_intent,)).fetchone()
    return Order(*row) if row else None


def fee_shares(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, float, str]]:
    """(method, fee share, "fees / gross") per method, from the shop's report rows."""
    shares = []
    for row in rows:
        gross, fees = int(row.get("gross") or 0), int(row.get("fees") or 0)
        share = fees / gross if gross else 0.0
        shares.append((str(row.get("method")), share, f"¥{fees:,} / ¥{gross:,}"))
    return shares
