"""The product catalogue: a TOML file read once at start and checked field by field.

Why strict: a mistyped price, or konbini offered on an item Stripe cannot take by konbini, must
stop the service at start with a message naming the product and the field, not fail a buyer at
checkout. ``audit`` answers the other design-time question: which product × method would let the
fee eat too much of the sale (issue 6, ``ichido fees audit``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator

from ichido.shop.fees import (AMOUNT_LIMITS, METHODS, FeeQuote, PricingTable, Share,
                              as_share, shown, within_limits)
from ichido.config import parse_toml, read_text
from ichido.errors import ConfigError
from ichido.shop.errors import ShopError

_Bad = Callable[[str, str], ConfigError]

KINDS: tuple[str, ...] = ("video_ticket", "physical", "live_item", "subscription")
INTERVALS: tuple[str, ...] = ("month", "year")
_FIELDS = ("id", "name", "price", "kind", "methods", "stock", "interval", "trial_days")
# The methods the shop bills a plan by: PayPay takes one-time payments only (Stripe), and the
# shop does not (yet) send subscription invoices to be paid by bank transfer.
PLAN_METHODS: tuple[str, ...] = ("card", "konbini")


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    price: int  # yen, tax included: what the buyer pays (per period, for a subscription)
    kind: str
    methods: tuple[str, ...]
    stock: int | None = None  # physical items only
    interval: str | None = None  # subscriptions only: "month" or "year"
    trial_days: int | None = None  # subscriptions only, optional


class Catalog:
    """Products by id, in file order."""

    def __init__(self, products: Iterable[Product], origin: str = "<memory>") -> None:
        self.origin = origin
        self.products: dict[str, Product] = {}
        for product in products:
            if product.id in self.products:
                raise ConfigError(f"{origin}: duplicate product id {product.id!r}")
            self.products[product.id] = product

    def get(self, product_id: str) -> Product:
        try:
            return self.products[product_id]
        except KeyError:
            raise ShopError(f"unknown product {product_id!r}", code="unknown_product") from None

    def __iter__(self) -> Iterator[Product]:
        return iter(self.products.values())

    def __len__(self) -> int:
        return len(self.products)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self.products


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    return parse_catalog(read_text(path, "catalogue"), origin=str(path))


def parse_catalog(text: str, origin: str = "<string>") -> Catalog:
    doc = parse_toml(text, origin)
    entries = doc.get("products")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: no products: add [[products]] tables")
    first_seen: dict[str, int] = {}
    products = []
    for number, entry in enumerate(entries, start=1):
        product = _product(number, entry, origin, first_seen)
        first_seen[product.id] = number
        products.append(product)
    return Catalog(products, origin)


def _product(number: int, entry: Any, origin: str, first_seen: dict[str, int]) -> Product:
    where = f"{origin}: product #{number}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a [[products]] table")
    pid = entry.get("id")
    if not isinstance(pid, str) or not pid.strip() or pid != pid.strip():
        raise ConfigError(f"{where} (no usable id): id: must be a non-empty string "
                          f"without surrounding spaces, got {shown(pid)}")
    where = f"{where} (id {pid!r})"

    def bad(field: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: {field}: {problem}")

    if pid in first_seen:
        raise bad("id", f"duplicate of product #{first_seen[pid]}")
    for field in entry:
        if field not in _FIELDS:
            raise bad(field, f"unknown field (known: {', '.join(_FIELDS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad("name", f"must be a non-empty string, got {shown(name)}")
    price = entry.get("price")
    if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
        raise bad("price", f"must be a positive whole number of yen, got {shown(price)}")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise bad("kind", f"must be one of {', '.join(KINDS)}, got {shown(kind)}")
    methods = _methods(entry.get("methods"), price, kind, bad)
    interval, trial_days = _plan(kind, entry, bad)
    return Product(id=pid, name=name, price=price, kind=kind, methods=methods,
                   stock=_stock(kind, entry, bad), interval=interval, trial_days=trial_days)


def _plan(kind: str, entry: dict[str, Any], bad: _Bad) -> tuple[str | None, int | None]:
    """A subscription plan bills every ``interval``; each invoice pays the fee again, so the
    audit judges the price of one period (konbini invoices are sent, never charged)."""
    interval, trial = entry.get("interval"), entry.get("trial_days")
    if kind != "subscription":
        for field, value in (("interval", interval), ("trial_days", trial)):
            if value is not None:
                raise bad(field, f"only subscriptions have one (this one is {kind})")
        return None, None
    if interval not in INTERVALS:
        raise bad("interval", f"must be one of {', '.join(INTERVALS)}, got {shown(interval)}")
    if trial is not None and (isinstance(trial, bool) or not isinstance(trial, int)
                              or not 1 <= trial <= 730):
        raise bad("trial_days", f"must be a whole number of days from 1 to 730 (Stripe's "
                                f"limit), got {shown(trial)}")
    return interval, trial


def _methods(value: Any, price: int, kind: str, bad: _Bad) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise bad("methods", f"must be a non-empty list such as [\"card\", \"konbini\"], "
                             f"got {shown(value)}")
    for method in value:
        if method not in METHODS:
            raise bad("methods", f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if len(set(value)) != len(value):
        raise bad("methods", f"lists a method twice: {value!r}")
    for method in value:
        if not within_limits(method, price):
            low, high = AMOUNT_LIMITS[method]
            raise bad("methods", f"{method} takes ¥{low:,}–¥{high or 0:,} per payment, "
                                 f"but price is ¥{price:,}: remove {method} or change the price")
        if kind == "subscription" and method not in PLAN_METHODS:
            raise bad("methods", f"a plan is billed by {' or '.join(PLAN_METHODS)}, not "
                                 f"{method} (one-time payments only)")
    return tuple(value)


def _stock(kind: str, entry: dict[str, Any], bad: _Bad) -> int | None:
    stock = entry.get("stock")
    if kind != "physical":
        if stock is not None:
            raise bad("stock", f"only physical items have stock (this one is {kind})")
        return None
    if isinstance(stock, bool) or not isinstance(stock, int) or stock < 0:
        raise bad("stock", f"a physical item needs a stock count, a whole number ≥ 0, "
                           f"got {shown(stock)}")
    return stock


@dataclass(frozen=True)
class AuditRow:
    product_id: str
    name: str
    price: int
    method: str
    fee: int
    fee_share: Decimal
    over_limit: bool
    interval: str | None = None  # a plan's fee is paid again on every renewal

    def to_json(self) -> dict[str, Any]:
        return {"product": self.product_id, "name": self.name, "price": self.price,
                "method": self.method, "fee": self.fee, "net": self.price - self.fee,
                "fee_share": float(self.fee_share), "over_limit": self.over_limit,
                "interval": self.interval}


@dataclass(frozen=True)
class Suggestion:
    """What to do about a refused product: a method it lists, one to add, or a price."""

    product_id: str
    quote: FeeQuote | None  # the suggested method's fee, or None: no method fits
    listed: bool  # the product already offers the method
    lowest_price: int | None = None  # without a method: the price from which one fits

    def text(self) -> str:
        if self.quote is None:
            return (f"no method fits at this price; from ¥{self.lowest_price:,} one does"
                    if self.lowest_price else "no method fits at any price")
        q = self.quote
        verb = "offer" if self.listed else "add to its methods"
        return f"{verb} {q.method}: ¥{q.fee:,} ({float(q.fee_share):.1%})"

    def to_json(self) -> dict[str, Any]:
        return {"product": self.product_id, "method": self.quote and self.quote.method,
                "fee": self.quote and self.quote.fee,
                "fee_share": self.quote and float(self.quote.fee_share), "listed": self.listed,
                "lowest_price": self.lowest_price}


def suggest(product: Product, pricing: PricingTable, max_share: Share) -> Suggestion:
    """The fee guard's answer for a product: the cheapest non-card method within the limit
    among those it lists, else among those Stripe offers for its kind, else the lowest price
    at which some method it lists fits."""
    usable = PLAN_METHODS if product.kind == "subscription" else METHODS
    for methods, listed in ((product.methods, True), (usable, False)):
        found = pricing.compare(product.price, max_share, methods).suggestion()
        if found is not None:
            return Suggestion(product.id, found, listed)
    prices = [p for p in (pricing.break_even(m, max_share) for m in product.methods
                          if m != "card") if p is not None]
    return Suggestion(product.id, None, False, min(prices) if prices else None)


def audit(catalog: Catalog, pricing: PricingTable,
          max_share: Share) -> list[AuditRow]:
    """One row per product × allowed method; ``over_limit`` when the share is above the limit."""
    limit = as_share(max_share)
    rows = []
    for product in catalog:
        for method in product.methods:
            quote = pricing.quote(product.price, method)
            rows.append(AuditRow(product_id=product.id, name=product.name, price=product.price,
                                 method=method, fee=quote.fee, fee_share=quote.fee_share,
                                 over_limit=quote.exceeds(limit), interval=product.interval))
    return rows
