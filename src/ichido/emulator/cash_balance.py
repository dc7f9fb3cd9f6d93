"""A customer's cash balance: money the customer sent by bank transfer that Stripe holds until it
pays for something, and the transactions that move it.

Facts (docs.stripe.com/payments/customer-balance, the API reference of ``cash_balance`` and
``customer_cash_balance_transaction``): the balance is per currency (``available``), with
``settings.reconciliation_mode`` ``automatic`` by default; every movement is a
``customer_cash_balance_transaction`` (``funded``, ``applied_to_payment``,
``refunded_from_payment``…) with ``net_amount`` and ``ending_balance``, announced by
``customer_cash_balance_transaction.created``; money left over after automatic reconciliation
is announced by ``cash_balance.funds_available``. The test helper
``POST /v1/test_helpers/customers/{customer}/fund_cash_balance`` (``amount``, ``currency``,
optional ``reference``) stands for a transfer arriving and answers its ``funded`` transaction.

The balance is the sum of the transactions, so a refused request that stored none left it as
it was. Only automatic reconciliation exists here (``POST /v1/customers/{id}/cash_balance``
is not served).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ichido.emulator import forms, objects, reading
from ichido.emulator.errors import invalid, no_such
from ichido.emulator.state import Store

KIND = "customer_cash_balance_transaction"
# Told of new money on a customer's balance: (customer, currency, reference) -> None.
Reconciler = Callable[[str, str, str | None], None]


class CashBalances:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.reconcilers: list[Reconciler] = []

    # -- reading ---------------------------------------------------------------------------
    def available(self, customer: str, currency: str) -> int:
        return sum(t["net_amount"] for t in self.store.objects[KIND].values()
                   if t["customer"] == customer and t["currency"] == currency)

    def balance(self, customer: str) -> dict[str, Any]:
        """The ``cash_balance`` object (``available`` is null before any movement)."""
        totals: dict[str, int] = {}
        for txn in self.store.objects[KIND].values():
            if txn["customer"] == customer:
                totals[txn["currency"]] = totals.get(txn["currency"], 0) + txn["net_amount"]
        return {"object": "cash_balance", "available": totals or None, "customer": customer,
                "livemode": False, "settings": {"reconciliation_mode": "automatic",
                                                "using_merchant_default": True}}

    def retrieve(self, customer: str, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/customers/{customer}/cash_balance``."""
        self.store.get("customer", customer, "customer")
        return self.balance(customer)

    def list(self, customer: str, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/customers/{customer}/cash_balance_transactions``, newest first."""
        forms.check_known(params, {"limit", "starting_after", "ending_before", "expand"})
        self.store.get("customer", customer, "customer")
        mine = [t for t in reversed(self.store.objects[KIND].values())
                if t["customer"] == customer]
        return reading.page(mine, params, f"/v1/customers/{customer}/cash_balance_transactions",
                            KIND, mine)

    def transaction(self, customer: str, txn_id: str, params: dict[str, Any]) -> dict[str, Any]:
        txn = self.store.objects[KIND].get(txn_id)
        if txn is None or txn["customer"] != customer:
            raise no_such(KIND, txn_id)
        return txn

    # -- movements -------------------------------------------------------------------------
    def record(self, customer: str, currency: str, net: int, kind: str,
               detail: dict[str, Any]) -> dict[str, Any]:
        """One movement of the balance, stored and announced."""
        txn = {"id": objects.new_id("ccsbtxn"), "object": KIND,
               "created": self.store.clock.now(), "currency": currency, "customer": customer,
               "ending_balance": self.available(customer, currency) + net, "livemode": False,
               "net_amount": net, "type": kind, kind: detail}
        self.store.add(txn)
        self.store.emit(f"{KIND}.created", txn)
        return txn

    def fund(self, customer: str, params: dict[str, Any]) -> dict[str, Any]:
        """The test helper: a transfer of ``amount`` arrives, is reconciled automatically, and
        what no open payment took stays on the balance (``cash_balance.funds_available``)."""
        forms.check_known(params, {"amount", "currency", "reference", "expand"})
        amount = forms.amount(params, "amount", required=True)
        currency = (forms.text(params, "currency", required=True) or "").lower()
        reference = forms.text(params, "reference")
        assert amount is not None
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise invalid(f"Invalid currency: {currency[:20]}", param="currency")
        self.store.get("customer", customer, "customer")
        kind = {"jpy": "jp_bank_transfer", "eur": "eu_bank_transfer",
                "gbp": "gb_bank_transfer", "mxn": "mx_bank_transfer"}.get(currency,
                                                                      "us_bank_transfer")
        transfer: dict[str, Any] = {"reference": reference, "type": kind}
        transfer[kind] = {"sender_bank": None, "sender_branch": None, "sender_name": None} \
            if kind == "jp_bank_transfer" else {"sender_name": None} | (
                {"network": "ach"} if kind == "us_bank_transfer" else {})
        funded = self.record(customer, currency, amount, "funded", {"bank_transfer": transfer})
        for reconcile in self.reconcilers:
            reconcile(customer, currency, reference)
        if self.available(customer, currency) > 0:
            self.store.emit("cash_balance.funds_available", self.balance(customer))
        return funded
