"""The shop's tables, versioned like ichido's own (portable between SQLite and PostgreSQL).

Uniqueness is the last line of defence for exactly-once effects: one entitlement and one
shipment per order are primary keys, one refund per Stripe refund id likewise.
"""

from __future__ import annotations

from ichido.db import Step

SHOP_SCHEMA: list[Step] = [
    ("shop", 1, [
        """CREATE TABLE shop_orders (
            id TEXT PRIMARY KEY,
            product_id TEXT NOT NULL,
            product_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            amount BIGINT NOT NULL,
            payment_method TEXT NOT NULL,
            email TEXT NOT NULL,
            status TEXT NOT NULL,
            payment_intent TEXT UNIQUE,
            voucher_url TEXT,
            voucher_expires_at BIGINT,
            voucher_stores TEXT,
            failure TEXT,
            idempotency_key TEXT UNIQUE,
            request_fingerprint TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE shop_stock (
            product_id TEXT PRIMARY KEY,
            available INTEGER NOT NULL
        )""",
        """CREATE TABLE shop_entitlements (
            order_id TEXT PRIMARY KEY,
            product_id TEXT NOT NULL,
            email TEXT NOT NULL,
            granted_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        )""",
        """CREATE TABLE shop_shipments (
            order_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE shop_refunds (
            id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            amount BIGINT NOT NULL,
            status TEXT NOT NULL,
            next_action TEXT,
            created BIGINT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX shop_refunds_order ON shop_refunds (order_id)",
        """CREATE TABLE shop_refund_requests (
            id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            amount BIGINT NOT NULL,
            idempotency_key TEXT,
            refund_id TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            UNIQUE (order_id, idempotency_key)
        )""",
    ]),
    # The buyer's language (mails), and which refunds were mailed (refund-1, refund-2, ...).
    ("shop", 2, [
        "ALTER TABLE shop_orders ADD COLUMN locale TEXT NOT NULL DEFAULT 'ja'",
        "ALTER TABLE shop_refunds ADD COLUMN mail_number INTEGER",
    ]),
    # Konbini vouchers renewed after expiry (payment attempts), parcels stopped and resumed,
    # and the reaper's look-up of unpaid orders.
    ("shop", 3, [
        "ALTER TABLE shop_orders ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",
        """CREATE TABLE shop_payment_attempts (
            order_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            payment_method TEXT NOT NULL,
            PRIMARY KEY (order_id, seq),
            UNIQUE (order_id, payment_method)
        )""",
        "ALTER TABLE shop_shipments ADD COLUMN stops INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX shop_orders_unpaid ON shop_orders (status, created_at)",
    ]),
    # Orders paid through Stripe Checkout: the session and its hosted page.
    ("shop", 4, [
        "ALTER TABLE shop_orders ADD COLUMN checkout_session TEXT",
        "ALTER TABLE shop_orders ADD COLUMN checkout_url TEXT",
        "CREATE UNIQUE INDEX shop_orders_checkout ON shop_orders (checkout_session)",
    ]),
    # Streaming subscriptions: ours, their invoices, the access they give, Stripe's prices.
    ("shop", 5, [
        """CREATE TABLE shop_subscriptions (
            id TEXT PRIMARY KEY,
            plan TEXT NOT NULL,
            email TEXT NOT NULL,
            payment_method TEXT NOT NULL,
            locale TEXT NOT NULL,
            stripe_subscription TEXT UNIQUE,
            status TEXT NOT NULL,
            status_at BIGINT NOT NULL DEFAULT 0,
            ended INTEGER NOT NULL DEFAULT 0,
            current_period_end BIGINT,
            idempotency_key TEXT UNIQUE,
            request_fingerprint TEXT,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE shop_subscription_invoices (
            id TEXT PRIMARY KEY,
            subscription_id TEXT NOT NULL,
            amount BIGINT NOT NULL,
            status TEXT NOT NULL,
            voucher_url TEXT,
            period_end BIGINT,
            created BIGINT NOT NULL
        )""",
        "CREATE INDEX shop_subscription_invoices_sub ON shop_subscription_invoices (subscription_id)",
        """CREATE TABLE shop_subscription_access (
            subscription_id TEXT PRIMARY KEY,
            granted_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        )""",
        """CREATE TABLE shop_plan_prices (
            plan TEXT NOT NULL,
            amount BIGINT NOT NULL,
            period TEXT NOT NULL,
            price TEXT NOT NULL,
            PRIMARY KEY (plan, amount, period)
        )""",
    ]),
    # An order that gave its stock back holds none until it takes it again (a late payment may
    # find the shelf empty); subscription invoices' payments (refunds find them) and lateness
    # (the grace period runs from it); each change of a subscription's access, once.
    ("shop", 6, [
        "ALTER TABLE shop_orders ADD COLUMN stock_held INTEGER NOT NULL DEFAULT 1",
        "UPDATE shop_orders SET stock_held = 0 WHERE status IN"
        " ('failed', 'expired', 'canceled', 'abandoned') OR id IN (SELECT order_id FROM"
        " shop_shipments WHERE status IN ('canceled', 'needs_attention'))",
        "ALTER TABLE shop_subscription_invoices ADD COLUMN payment_intent TEXT",
        "ALTER TABLE shop_subscription_invoices ADD COLUMN late_since BIGINT",
        "CREATE INDEX shop_subscription_invoices_pi ON shop_subscription_invoices"
        " (payment_intent)",
        "ALTER TABLE shop_subscription_access ADD COLUMN revoked_reason TEXT",
        """CREATE TABLE shop_subscription_refunds (
            id TEXT PRIMARY KEY,
            invoice_id TEXT NOT NULL,
            subscription_id TEXT NOT NULL,
            amount BIGINT NOT NULL,
            status TEXT NOT NULL
        )""",
        """CREATE TABLE shop_access_changes (
            subscription_id TEXT NOT NULL,
            change TEXT NOT NULL,
            cause TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (subscription_id, change, cause)
        )""",
    ]),
    # Since basil an invoice names its payments only when expanded; ``invoice_payment.paid``
    # says which PaymentIntent paid which invoice, possibly before the invoice's own event.
    ("shop", 7, [
        """CREATE TABLE shop_invoice_payments (
            payment_intent TEXT PRIMARY KEY,
            invoice_id TEXT NOT NULL
        )""",
        "CREATE INDEX shop_invoice_payments_invoice ON shop_invoice_payments (invoice_id)",
    ]),
    # PayPay and bank transfer (issue 24): the redirect the buyer follows, the transfer's
    # instructions and what is still owed, the hold after which an unpaid order is released,
    # and the Stripe customer whose virtual account receives the transfer.
    ("shop", 8, [
        "ALTER TABLE shop_orders ADD COLUMN redirect_url TEXT",
        "ALTER TABLE shop_orders ADD COLUMN transfer TEXT",
        "ALTER TABLE shop_orders ADD COLUMN amount_remaining BIGINT",
        "ALTER TABLE shop_orders ADD COLUMN hold_until DOUBLE PRECISION",
        "ALTER TABLE shop_orders ADD COLUMN customer TEXT",
        "CREATE INDEX shop_orders_hold ON shop_orders (status, hold_until)",
    ]),
    # One Stripe Customer per buyer (by e-mail), so a returning buyer's transfers go to the
    # virtual account they already have.
    ("shop", 9, [
        """CREATE TABLE shop_customers (
            email TEXT PRIMARY KEY,
            customer TEXT NOT NULL
        )""",
    ]),
]
