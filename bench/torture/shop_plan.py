"""The shop torture's plan: what each buyer does (product, card or konbini, paid, declined or
expired, refunds), drawn from the run's seed, and the catalogue the shop sells from."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

SHOP_APP = "ichido.shop.app:create_app"
API_KEY = "sk_test_ichido_torture"
STOCK = 100_000_000
PRODUCTS = {  # id: (kind, price)
    "live-2026-12": ("video_ticket", 1500),
    "tour-tshirt": ("physical", 3500),
    "live-acrylic-stand": ("live_item", 2000),
}
SHIPPED = ("physical", "live_item")
REACHED_PAID = ("paid", "partially_refunded", "refunded")


@dataclass
class Plan:
    index: int
    product: str
    method: str  # card | konbini
    outcome: str  # paid | declined | expired
    refunds: tuple[int | None, ...] = ()  # one amount per refund request; None: the rest
    order_id: str | None = None
    payment_intent: str | None = None
    refund_requests: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def amount(self) -> int:
        return PRODUCTS[self.product][1]

    @property
    def kind(self) -> str:
        return PRODUCTS[self.product][0]

    def expected_status(self) -> str:
        if self.outcome == "declined":
            return "failed"
        if self.outcome == "expired":
            return "expired"
        if not self.refunds:
            return "paid"
        return "refunded" if None in self.refunds else "partially_refunded"


def make_plans(count: int, rng: random.Random) -> list[Plan]:
    plans = []
    for index in range(count):
        product = rng.choice(list(PRODUCTS))
        roll = rng.random()
        if roll < 0.34:
            method, outcome = "card", "paid"
        elif roll < 0.42:
            method, outcome = "card", "declined"
        elif roll < 0.84:
            method, outcome = "konbini", "paid"
        else:
            method, outcome = "konbini", "expired"
        refunds: tuple[int | None, ...] = ()
        if outcome == "paid" and rng.random() < 0.3:
            half = PRODUCTS[product][1] // 2
            if method == "konbini":
                refunds = (None,)
            else:
                refunds = rng.choice([(None,), (half,), (half, None)])
        plans.append(Plan(index, product, method, outcome, refunds))
    return plans


def write_catalog(path: Path) -> Path:
    """The products above as the shop's catalogue file (stock enough never to run out)."""
    path.write_text("".join(
        f'[[products]]\nid = "{pid}"\nname = "{pid}"\nprice = {price}\nkind = "{kind}"\n'
        + (f"stock = {STOCK}\n" if kind == "physical" else "")
        + 'methods = ["card", "konbini"]\n\n' for pid, (kind, price) in PRODUCTS.items()))
    return path
