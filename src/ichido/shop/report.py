"""The fee report from real money: Stripe's balance transactions, per payment method.

Read from the API (charges with their balance transaction expanded), not estimated: this is what
the quote and the audit predicted, measured. Refunds are shown beside it, because Stripe keeps
the fee of a refunded charge, and a refunded cheap konbini sale can cost more than it earned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

import stripe


@dataclass
class MethodTotals:
    method: str
    count: int = 0
    gross: int = 0
    fees: int = 0
    net: int = 0
    refunded: int = 0
    fee_types: dict[str, int] = field(default_factory=dict)

    @property
    def fee_share(self) -> Decimal:
        return Decimal(self.fees) / Decimal(self.gross) if self.gross else Decimal(0)

    def add(self, charge: dict[str, Any]) -> None:
        balance = charge.get("balance_transaction")
        if not isinstance(balance, dict):
            raise ValueError(f"charge {charge.get('id')}: balance transaction not expanded")
        self.count += 1
        self.gross += balance["amount"]
        self.fees += balance["fee"]
        self.net += balance["net"]
        self.refunded += charge.get("amount_refunded") or 0
        for detail in balance.get("fee_details") or []:
            self.fee_types[detail["type"]] = self.fee_types.get(detail["type"], 0) + detail["amount"]

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "count": self.count, "gross": self.gross,
                "fees": self.fees, "net": self.net, "fee_share": float(self.fee_share),
                "refunded": self.refunded, "kept": self.net - self.refunded,
                "fee_types": self.fee_types}


def totals(charges: Iterable[dict[str, Any]]) -> list[MethodTotals]:
    """Sum succeeded charges per payment method."""
    by_method: dict[str, MethodTotals] = {}
    for charge in charges:
        if charge.get("status") != "succeeded":
            continue
        method = (charge.get("payment_method_details") or {}).get("type") or "unknown"
        by_method.setdefault(method, MethodTotals(method)).add(charge)
    return sorted(by_method.values(), key=lambda t: t.method)


def fetch_charges(client: stripe.StripeClient, since: int | None) -> Iterable[dict[str, Any]]:
    """Every charge since ``since`` (Unix time), balance transaction included, page by page."""
    params: dict[str, Any] = {"limit": 100, "expand": ["data.balance_transaction"]}
    if since is not None:
        params["created"] = {"gte": since}
    for charge in client.v1.charges.list(params=params).auto_paging_iter():
        yield charge.to_dict()


def dashboard_rows(client: stripe.StripeClient, max_share: float,
                   days: int = 30) -> list[dict[str, Any]]:
    """The report as the Shop tab's fee chart takes it (``Shop.fee_report``): the last
    ``days`` of real fees per method, each with the limit the fee guard applies."""
    since = int(time.time()) - days * 86400
    return [dict(row.to_json(), max_share=max_share)
            for row in totals(fetch_charges(client, since))]
