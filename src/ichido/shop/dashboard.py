"""The shop's part of the operator page, through the dashboard's public hook
(``ichido.dashboard.panels``): a Shop tab with the open konbini vouchers, the orders waiting for
a bank transfer (with what is still owed) or a PayPay authorisation, the refunds waiting
for bank details and the fee share per method, and an event's order on the event's page.

The page is shown in Japan time (the shop's ``app.dashboard.timezone``; the operator's
``ICHIDO_DASHBOARD_TIMEZONE`` wins). "Expiring today" is Japan's today whatever the page shows:
a konbini voucher expires at 23:59 in Japan.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Mapping

from ichido import App
from ichido.dashboard.panels import Bars, Column, Facts, Field, Section, Table, View
from ichido.shop.messages import JST

# The shop's ``fees report`` rows ({"method", "gross", "fees", "max_share"}), or None.
FeeReport = Callable[[], Iterable[Mapping[str, Any]] | None]
ORDER_COLUMNS = ("id, product_name, amount, payment_method, status, voucher_expires_at,"
                 " payment_intent, created_at")
ORDER_FIELDS = ORDER_COLUMNS.split(", ")
TIME_ZONE = "Asia/Tokyo"

ORDER = {"en": "Order", "ja": "注文"}
PRODUCT = {"en": "Product", "ja": "商品"}
AMOUNT = {"en": "Amount", "ja": "金額"}
DEADLINE = {"en": "Deadline", "ja": "支払期限"}
PAYMENT = {"en": "Stripe object id", "ja": "Stripe オブジェクト ID"}
VOUCHER_COLUMNS = [Column("id", ORDER), Column("product_name", PRODUCT),
                   Column("amount", AMOUNT, "number"),
                   Column("voucher_expires_at", DEADLINE, "time"),
                   Column("payment_intent", PAYMENT, "object")]


def register(app: App, fee_report: FeeReport | None) -> None:
    """The Shop tab and the order of an event, on ``app``'s operator page."""
    app.dashboard.timezone = TIME_ZONE
    app.dashboard.tab("shop", {"en": "Shop", "ja": "ショップ"})
    app.dashboard.panel("shop")(shop_state)
    if fee_report is not None:
        # The report asks Stripe for balance transactions: minutes old is fresh enough.
        app.dashboard.panel("shop", every=300.0)(lambda _view: [fee_chart(fee_report())])
    app.dashboard.event_panel(event_order)


def today_in_japan(now: float) -> tuple[float, float]:
    day = dt.datetime.fromtimestamp(now, JST).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp(), (day + dt.timedelta(days=1)).timestamp()


def yen(amount: int) -> str:
    return f"¥{amount:,}"


def shop_state(view: View, limit: int = 50) -> list[Section]:
    start, end = today_in_japan(view.now)
    with view.db.reading() as tx:
        awaiting = tx.execute(f"SELECT {ORDER_COLUMNS} FROM shop_orders WHERE status ="
                              " 'awaiting_payment' AND payment_method NOT IN"
                              " ('paypay', 'customer_balance')"
                              " ORDER BY voucher_expires_at LIMIT ?",
                              (limit,)).fetchall()
        expiring = tx.execute(f"SELECT {ORDER_COLUMNS} FROM shop_orders WHERE status ="
                              " 'awaiting_payment' AND voucher_expires_at >= ? AND"
                              " voucher_expires_at < ? ORDER BY voucher_expires_at LIMIT ?",
                              (int(start), int(end), limit)).fetchall()
        transfers = tx.execute(
            "SELECT id, product_name, amount, amount_remaining, hold_until, payment_intent"
            " FROM shop_orders WHERE payment_method = 'customer_balance' AND status IN"
            " ('awaiting_payment', 'partially_paid') ORDER BY hold_until LIMIT ?",
            (limit,)).fetchall()
        paypay = tx.execute(
            "SELECT id, product_name, amount, amount, hold_until, payment_intent FROM shop_orders"
            " WHERE payment_method = 'paypay' AND status = 'awaiting_payment'"
            " ORDER BY hold_until LIMIT ?", (limit,)).fetchall()
        refunds = tx.execute("SELECT id, order_id, amount, status, created FROM shop_refunds"
                             " WHERE status = 'requires_action' ORDER BY created LIMIT ?",
                             (limit,)).fetchall()
    return [
        Table({"en": "Vouchers expiring today (Japan time)",
               "ja": "本日（日本時間）期限切れになる支払い番号"},
              VOUCHER_COLUMNS, [_order_row(row) for row in expiring], id="shop-expiring"),
        Table({"en": "Awaiting konbini payment", "ja": "コンビニ支払い待ち"},
              VOUCHER_COLUMNS, [_order_row(row) for row in awaiting], id="shop-awaiting"),
        Table({"en": "Waiting for a bank transfer", "ja": "銀行振込の入金待ち"},
              HELD_COLUMNS, [_held_row(row) for row in transfers], id="shop-transfers"),
        Table({"en": "PayPay waiting for authorization", "ja": "PayPay の承認待ち"},
              HELD_COLUMNS[:3] + HELD_COLUMNS[4:], [_held_row(row) for row in paypay],
              id="shop-paypay"),
        Table({"en": "Refunds waiting for bank details", "ja": "口座情報待ちの返金"},
              [Column("id", "id", "object"), Column("order_id", ORDER),
               Column("amount", AMOUNT, "number"),
               Column("created", {"en": "Created at Stripe", "ja": "Stripe での作成日時"},
                      "time")],
              [{"id": refund_id, "order_id": order_id, "amount": yen(amount), "created": created}
               for refund_id, order_id, amount, _status, created in refunds],
              id="shop-refunds"),
    ]


HELD_COLUMNS = [Column("id", ORDER), Column("product_name", PRODUCT),
                Column("amount", AMOUNT, "number"),
                Column("owed", {"en": "Still owed", "ja": "未入金額"}, "number"),
                Column("hold_until", {"en": "Held until", "ja": "取り置き期限"}, "time"),
                Column("payment_intent", PAYMENT, "object")]


def _held_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """An order held for a transfer or an authorisation (``owed``: nothing received yet
    reads as the whole amount)."""
    order_id, product, amount, owed, hold_until, payment_intent = row
    return {"id": order_id, "product_name": product, "amount": yen(int(amount)),
            "owed": yen(int(amount if owed is None else owed)), "hold_until": hold_until,
            "payment_intent": payment_intent}


def _order_row(row: tuple[Any, ...]) -> dict[str, Any]:
    order = dict(zip(ORDER_FIELDS, row))
    return order | {"amount": yen(int(order["amount"]))}


def event_order(view: View, event: Mapping[str, Any]) -> list[Section]:
    """The order a payment's events belong to, on the event's page."""
    obj = (event.get("data") or {}).get("object") or {}
    payment_intent = obj.get("id") if obj.get("object") == "payment_intent" \
        else obj.get("payment_intent")
    if not isinstance(payment_intent, str) or not payment_intent:
        return []
    with view.db.reading() as tx:
        row = tx.execute(f"SELECT {ORDER_COLUMNS} FROM shop_orders WHERE payment_intent = ?",
                         (payment_intent,)).fetchone()
    if row is None:
        return []
    order = _order_row(row)
    fields = [Field("id", order["id"]), Field(PRODUCT, order["product_name"]),
              Field(AMOUNT, order["amount"]),
              Field({"en": "Method", "ja": "決済手段"}, order["payment_method"]),
              Field({"en": "Status", "ja": "状態"}, order["status"])]
    if order["voucher_expires_at"]:
        fields.append(Field(DEADLINE, order["voucher_expires_at"], "time"))
    return [Facts(ORDER, fields, id="order")]


def fee_chart(rows: Iterable[Mapping[str, Any]] | None) -> Section:
    """The fee share per method from the report's rows, against the fee guard's limit."""
    rows = list(rows or [])
    limits = [float(row["max_share"]) for row in rows if row.get("max_share") is not None]
    return Bars({"en": "Fee share per method", "ja": "決済手段ごとの手数料率"},
                fee_shares(rows), max(limits) if limits else None, id="fee-share")


def fee_shares(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, float, str]]:
    """(method, fee share, "fees / gross") per method, from the shop's report rows."""
    shares = []
    for row in rows:
        gross, fees = int(row.get("gross") or 0), int(row.get("fees") or 0)
        share = fees / gross if gross else 0.0
        shares.append((str(row.get("method")), share, f"{yen(fees)} / {yen(gross)}"))
    return shares
