"""Rows of the shop's tables that its dashboard tab shows, written straight into the database:
one konbini voucher due today in Japan, one due in three days, and one refund waiting for the
buyer's bank details (tests/shop/test_dashboard.py, tests/dashboard/test_browser.py)."""

from __future__ import annotations

import time

from ichido.db import Database
from ichido.shop.dashboard import today_in_japan


def add_vouchers_and_a_waiting_refund(database: Database) -> int:
    """Writes the rows; returns the end of today in Japan (the due voucher's expiry)."""
    now = time.time()
    end_of_today = int(today_in_japan(now)[1]) - 1
    with database.transaction() as tx:
        for order_id, expires in (("ord_today", end_of_today),
                                  ("ord_later", end_of_today + 3 * 86400)):
            tx.execute("INSERT INTO shop_orders (id, product_id, product_name, kind, quantity,"
                       " amount, payment_method, email, status, payment_intent,"
                       " voucher_expires_at, created_at, updated_at) VALUES"
                       " (?, 'p1', 'ライブチケット', 'ticket', 1, 1800, 'konbini', 'a@example.com',"
                       " 'awaiting_payment', ?, ?, ?, ?)",
                       (order_id, f"pi_{order_id}", expires, now, now))
        tx.execute("INSERT INTO shop_refunds (id, order_id, amount, status, created, updated_at)"
                   " VALUES ('re_waiting', 'ord_x', 1800, 'requires_action', ?, ?)",
                   (int(now), now))
    return end_of_today
