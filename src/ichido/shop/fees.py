"""Stripe Japan's fee for a payment, in exact whole yen, from a pricing data file.

Why: a fixed per-payment part can make a cheap sale cost more than half its price (issue 6), so
ichido quotes fees at design time (audit), at checkout (guard) and afterwards (report) from one
table, and never from float arithmetic.

The rules live in ``pricing.toml`` next to this module, each with its source, its date and
whether it is confirmed (none of the public figures is; a merchant's contract is). A user with
their own contract sets ``ICHIDO_PRICING=/path/to/pricing.toml`` (read by ``ShopSettings``):
the methods that file defines replace the packaged rules; the others keep them. Stripe rounds
its fee to the nearest unit of the currency, halves up (support.stripe.com/questions/rounding-
rules-for-stripe-fees); JPY is zero-decimal, so the unit is one yen.

The method names are Stripe's payment method types: ``customer_balance`` is a bank transfer
(``jp_bank_transfer``) into the customer's virtual account. The file format and its one reader
belong to the local Stripe (``ichido.emulator.fees``), which charges from the same file: the shop
depends on it, never the reverse, so what the guard predicts and what the emulator charges
cannot read one file two ways.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from math import ceil
from pathlib import Path
from typing import Any, Mapping

from ichido.config import parse_toml, read_text
# Re-exported: the shop's modules name the format's methods and rules here.
from ichido.emulator.fees import METHODS as METHODS, FeeRule as FeeRule, shown as shown
from ichido.emulator.fees import Pricing, PricingError, parse
from ichido.errors import ConfigError
from ichido.shop.errors import ShopError

CURRENCY = "jpy"
# Stripe's konbini limits per payment (docs.stripe.com/payments/konbini, checked 2026-11-26).
KONBINI_MIN = 120
KONBINI_MAX = 300_000
# PayPay: at least ¥50 (docs.stripe.com/payments/paypay); ¥1,000,000 at most on an older page.
PAYPAY_MIN = 50
PAYPAY_MAX = 1_000_000
AMOUNT_LIMITS: dict[str, tuple[int, int | None]] = {"konbini": (KONBINI_MIN, KONBINI_MAX),
                                                     "paypay": (PAYPAY_MIN, PAYPAY_MAX)}

# A fee-share limit: Decimal("0.2"), "0.2", or an exact Fraction.
Share = Decimal | str | int | Fraction


@dataclass(frozen=True)
class FeeQuote:
    """What Stripe keeps of one payment: ``net`` may be negative when the fixed part exceeds it."""

    amount: int
    method: str
    fee: int
    net: int
    fee_share: Decimal  # fee / amount; compare with exceeds(), which is exact

    def exceeds(self, max_share: Share) -> bool:
        """True when the fee is strictly above ``max_share`` of the amount (exact)."""
        return Fraction(self.fee) > as_share(max_share) * self.amount

    def details(self) -> list[dict[str, Any]]:
        """Shaped like a Stripe balance transaction's ``fee_details``."""
        return [{"amount": self.fee, "currency": CURRENCY, "type": "stripe_fee",
                 "description": "Stripe processing fees", "application": None}]

    def to_json(self) -> dict[str, Any]:
        return {"amount": self.amount, "method": self.method, "fee": self.fee, "net": self.net,
                "fee_share": float(self.fee_share), "currency": CURRENCY}


@dataclass(frozen=True)
class Comparison:
    """Every method's fee on one price, judged against one limit: which methods a shop may
    offer, and which one to suggest when a buyer's method is refused (issue 24)."""

    amount: int
    max_share: Fraction
    quotes: tuple[FeeQuote, ...]
    confirmed: dict[str, bool]
    highest: dict[str, int]  # the highest fee any figure on file gives (disputed rates)

    def accepted(self, method: str) -> bool:
        """Stripe takes the amount by this method."""
        return within_limits(method, self.amount)

    def allowed(self) -> list[str]:
        """The methods Stripe takes at this amount and whose fee is within the limit."""
        return [q.method for q in self.quotes
                if self.accepted(q.method) and not q.exceeds(self.max_share)]

    def suggestion(self) -> FeeQuote | None:
        """The cheapest allowed method other than card (ties: ``METHODS`` order), or None.

        Card is left out: a buyer refused another method may have no card. Figures are
        unconfirmed, so a method within the limit by every figure on file comes first: the
        bank transfer's ¥5 on ¥300 loses to PayPay's ¥12 while another source says ¥2,500."""
        allowed = set(self.allowed())
        fitting = [q for q in self.quotes if q.method in allowed and q.method != "card"]
        sure = [q for q in fitting
                if Fraction(self.highest[q.method]) <= self.max_share * self.amount]
        return min(sure or fitting, key=lambda q: q.fee) if fitting else None

    def to_json(self) -> dict[str, Any]:
        suggested = self.suggestion()
        allowed = self.allowed()
        return {"amount": self.amount, "currency": CURRENCY,
                "max_share": float(self.max_share),
                "methods": [q.to_json() | {"accepted": self.accepted(q.method),
                                           "within_limit": q.method in allowed,
                                           "confirmed": self.confirmed[q.method],
                                           "highest_fee_on_file": self.highest[q.method]}
                            for q in self.quotes],
                "allowed": allowed, "suggested": suggested and suggested.method}


class PricingTable:
    """The fee rule of each payment method, and the questions asked of them."""

    def __init__(self, rules: Mapping[str, FeeRule], origin: str = "<memory>") -> None:
        self.rules: dict[str, FeeRule] = dict(rules)
        self.origin = origin

    def rule(self, method: str) -> FeeRule:
        try:
            return self.rules[method]
        except KeyError:
            known = ", ".join(sorted(self.rules))
            raise ShopError(f"unknown payment method {method!r} (known: {known})",
                              code="unknown_method") from None

    def quote(self, amount: int, method: str) -> FeeQuote:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ShopError(f"amount must be a positive whole number of yen, got {amount!r}",
                              code="invalid_amount")
        fee = self.rule(method).fee(amount)
        return FeeQuote(amount=amount, method=method, fee=fee, net=amount - fee,
                        fee_share=Decimal(fee) / Decimal(amount))

    def compare(self, amount: int, max_share: Share,
                methods: tuple[str, ...] | list[str] | None = None) -> Comparison:
        """Every method's quote on ``amount`` (or those given, in ``METHODS`` order)."""
        wanted = METHODS if methods is None else tuple(m for m in METHODS if m in methods)
        quotes = tuple(self.quote(amount, method) for method in wanted)
        return Comparison(amount, as_share(max_share), quotes,
                          {m: self.rule(m).confirmed for m in wanted},
                          {q.method: max([q.fee, *(other.fee(amount) for other in
                                                   self.rule(q.method).other_figures)])
                           for q in quotes})

    def break_even(self, method: str, max_share: Share) -> int | None:
        """The lowest price from which every higher price keeps the fee within ``max_share``.

        None when no such price exists (the limit is at or below the percentage part).
        Rounding makes the share wobble, so the answer is searched down from a proven bound.
        """
        rule, limit = self.rule(method), as_share(max_share)
        rate = Fraction(rule.percent) / 100
        if limit <= rate:
            always_free = rule.percent == 0 and rule.fixed == 0 and not rule.minimum
            return 1 if always_free else None
        # Above this bound, fixed + rate·a + ½ ≤ limit·a and minimum ≤ limit·a both hold.
        bound = max(ceil((rule.fixed + Fraction(1, 2)) / (limit - rate)),
                    ceil(Fraction(rule.minimum or 0) / limit), 1)
        price = bound
        while price > 1 and rule.fee(price - 1) <= limit * (price - 1):
            price -= 1
        return price


def as_share(value: Share) -> Fraction:
    """A share limit such as ``Decimal("0.2")`` or ``"0.2"`` as an exact fraction."""
    if isinstance(value, Fraction):
        share = value
    else:
        share = _decimal_share(value)
    if share < 0:
        raise ShopError(f"a fee share cannot be negative: {value!r}", code="invalid_share")
    return share


def _decimal_share(value: object) -> Fraction:
    if isinstance(value, float):  # accepted for convenience, read as its shortest decimal
        value = str(value)
    try:
        return Fraction(Decimal(value))  # type: ignore[arg-type]  # what Decimal refuses: below
    except (InvalidOperation, ValueError, TypeError, OverflowError):
        raise ShopError(f"not a fee share: {value!r} (use e.g. 0.2)",
                          code="invalid_share") from None


def within_limits(method: str, amount: int) -> bool:
    """Whether Stripe accepts ``amount`` yen for ``method`` (konbini's and PayPay's limits)."""
    low, high = AMOUNT_LIMITS.get(method, (1, None))
    return low <= amount and (high is None or amount <= high)


def load_pricing(path: str | os.PathLike[str] | None = None) -> PricingTable:
    """The table in ``path`` (``ShopSettings.pricing_path``) over the packaged default: a
    merchant's contract names the methods it covers, the rest keep the public figures."""
    if path is not None:
        return _read_file(Path(path))
    return _default_table()


@functools.cache
def _default_table() -> PricingTable:
    text = importlib.resources.files("ichido.shop").joinpath("pricing.toml").read_text("utf-8")
    return parse_pricing(text, origin="ichido/shop/pricing.toml (packaged default)")


def _read_file(path: Path) -> PricingTable:
    return parse_pricing(read_text(path, "pricing file"), origin=str(path),
                         base=_default_table())


def parse_pricing(text: str, origin: str = "<string>",
                  base: PricingTable | None = None) -> PricingTable:
    """The rules in ``text``; a method it leaves out comes from ``base`` (without one, a
    missing method is an error: the packaged table must define them all)."""
    doc = parse_toml(text, origin)
    under = None if base is None else Pricing(base.rules, base.origin)
    try:
        read = parse(doc, origin, under)
    except PricingError as exc:
        raise ConfigError(str(exc)) from None
    return PricingTable(read.rules, origin)
