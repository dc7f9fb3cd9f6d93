"""One Stripe Customer per buyer, whose virtual account receives every bank transfer they make.

Stripe makes one virtual account per Customer: "All future bank transfer payments from this
customer get sent to this bank account" (docs.stripe.com/payments/bank-transfers/accept-a-payment),
and it matches each transfer against that customer's open payments (its reconciliation rules).
So a returning buyer, known by e-mail in any letter case, gets the same Customer and pays into
the account saved from the first order. Made once: the idempotency key (from the e-mail) covers
a retry and two first orders at once; the ``shop_customers`` row covers every later order.
"""

from __future__ import annotations

import hashlib

import stripe

from ichido.db import Database


def buyer_key(email: str) -> str:
    """The buyer an e-mail names: letter case and surrounding space do not make another one."""
    return email.strip().lower()


def customer_of(client: stripe.StripeClient, database: Database, email: str) -> str:
    """The id of the buyer's Stripe Customer, made the first time they pay by bank transfer."""
    buyer = buyer_key(email)
    known = _known(database, buyer)
    if known is not None:
        return known
    digest = hashlib.sha256(buyer.encode()).hexdigest()[:40]
    made = client.v1.customers.create(params={"email": buyer},
                                      options={"idempotency_key": f"ichido-buyer-{digest}"})
    with database.transaction() as tx:
        tx.execute("INSERT INTO shop_customers (email, customer) VALUES (?, ?)"
                   " ON CONFLICT (email) DO NOTHING", (buyer, made.id))
    return _known(database, buyer) or str(made.id)


def _known(database: Database, buyer: str) -> str | None:
    with database.reading() as tx:
        row = tx.execute("SELECT customer FROM shop_customers WHERE email = ?",
                         (buyer,)).fetchone()
    return None if row is None else str(row[0])
