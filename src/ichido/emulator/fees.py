"""The fee Stripe keeps on each charge, and the one reader of the pricing format that says it.

Why data: Stripe decides its fees, the shop only predicts them. The emulator plays Stripe, so it
takes the rule as data (``Emulator(pricing=...)``, ``ichido emulator --pricing FILE`` or
``ICHIDO_PRICING``) and imports none of the shop's code. The shop reads its pricing file through
this module (the shop depends on the emulator, never the reverse), so one file means the same
to both and a test can compare the fee the shop predicted with what the emulator "charged".

The format (``pricing.toml``): ``[methods.<name>]`` for ``METHODS`` (Stripe's payment method
types; ``customer_balance`` is a bank transfer) with ``percent``, ``fixed`` and an optional
``minimum`` (yen), ``source``, ``as_of`` (a date), ``confirmed`` (default false: a public figure
nobody checked against Stripe's page) and ``[[methods.<name>.other_figures]]`` (what other
sources say, each with the same fields, kept beside the figure in use). A file names the methods
it covers; the others keep the packaged rules (``load``).
``fee = max(minimum, fixed + round_half_up(amount × percent / 100))``: Stripe rounds its fee to
the currency's unit, halves up (support.stripe.com/questions/rounding-rules-for-stripe-fees).
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Mapping

# The public API (docs/api.md): the pricing format the shop reads too.
__all__ = ["FeeRule", "METHODS", "Pricing", "PricingError", "load", "parse", "shown"]

METHODS: tuple[str, ...] = ("card", "konbini", "paypay", "customer_balance")
# Products of yen and percentages must be exact: this context raises instead of rounding.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation])
_ROUND = Context(prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation])
_FIGURE_FIELDS = {"percent", "fixed", "minimum", "source", "as_of", "confirmed"}
_RULE_FIELDS = _FIGURE_FIELDS | {"other_figures"}


class PricingError(ValueError):
    """A pricing file or mapping the format refuses; the message names origin, method, field."""


@dataclass(frozen=True)
class FeeRule:
    """``fee = max(minimum, fixed + round_half_up(amount × percent / 100))`` in yen."""

    method: str
    percent: Decimal
    fixed: int
    minimum: int | None
    source: str
    as_of: str
    confirmed: bool = False  # a public figure nobody checked against Stripe's page stays False
    # Figures other sources give for the same method, kept beside the one in use (issue 24).
    other_figures: tuple["FeeRule", ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"percent": str(self.percent), "fixed": self.fixed, "minimum": self.minimum,
                "source": self.source, "as_of": self.as_of, "confirmed": self.confirmed,
                "other_figures": [other.to_json() for other in self.other_figures]}

    def formula(self) -> str:
        """``¥220 + 3.6%`` (and ``, at least ¥50``), as a person writes the rule."""
        parts = [f"¥{self.fixed:,}"] if self.fixed else []
        if self.percent or not parts:
            parts.append(f"{self.percent}%")
        minimum = f", at least ¥{self.minimum:,}" if self.minimum else ""
        return " + ".join(parts) + minimum

    def fee(self, amount: int) -> int:
        variable = _EXACT.divide(_EXACT.multiply(Decimal(amount), self.percent), 100)
        fee = self.fixed + int(_ROUND.quantize(variable, Decimal(1)))
        return max(fee, self.minimum or 0)


@dataclass(frozen=True)
class Pricing:
    """The rule of every method in ``METHODS``, and where it was read from."""

    rules: Mapping[str, FeeRule]
    origin: str = "<memory>"

    def fee(self, amount: int, method: str) -> int:
        return self.rules[method].fee(amount)


def load(source: Any = None) -> Pricing:
    """A ``Pricing`` from a mapping, a TOML file path, or (None) the packaged default: the
    methods a file or mapping names replace the packaged rules, the others keep them."""
    if isinstance(source, Pricing):
        return source
    if source is None:
        return packaged()
    if isinstance(source, Mapping):
        doc = source if "methods" in source else {"methods": source}
        return parse(doc, "<mapping>", base=packaged())
    path = Path(os.fspath(source))
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise PricingError(f"cannot read pricing file {path}: {exc.strerror or exc}") from None
    return parse(read_toml(text, str(path)), str(path), base=packaged())


@functools.cache
def packaged() -> Pricing:
    text = importlib.resources.files("ichido.emulator").joinpath("pricing.toml") \
        .read_text("utf-8")
    origin = "ichido/emulator/pricing.toml (packaged default)"
    return parse(read_toml(text, origin), origin)


def read_toml(text: str, origin: str) -> dict[str, Any]:
    """TOML with decimals kept exact (money and shares)."""
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PricingError(f"{origin}: not valid TOML: {exc}") from None


def parse(doc: Mapping[str, Any], origin: str, base: Pricing | None = None) -> Pricing:
    """The rules under ``doc["methods"]``; a method it leaves out comes from ``base`` (without
    one, a missing method is an error: a packaged table must define them all)."""
    methods = doc.get("methods")
    if not isinstance(methods, Mapping) or not methods:
        raise PricingError(f"{origin}: no [methods.<name>] tables "
                           f"(expected {', '.join(METHODS)})")
    for name in methods:
        if name not in METHODS:
            raise PricingError(f"{origin}: [methods.{name}]: unknown method "
                               f"(known: {', '.join(METHODS)})")
    rules = {}
    for name in METHODS:
        if name in methods:
            rules[name] = _rule(name, methods[name], origin)
        elif base is not None:
            rules[name] = base.rules[name]
        else:
            raise PricingError(f"{origin}: [methods.{name}] is missing: a pricing file must "
                               f"define every method ({', '.join(METHODS)})")
    return Pricing(rules, origin)


def shown(value: Any) -> str:
    """A TOML value as the user wrote it, for error messages (``1500.0``, not ``Decimal(...)``)."""
    if value is None:
        return "nothing (the field is missing)"
    return str(value) if isinstance(value, Decimal) else repr(value)


def _rule(method: str, table: Any, origin: str, where: str = "") -> FeeRule:
    def bad(field: str, problem: str) -> PricingError:
        return PricingError(f"{origin}: [methods.{method}{where}] {field}: {problem}")

    known = _FIGURE_FIELDS if where else _RULE_FIELDS
    if not isinstance(table, Mapping):
        raise bad("(table)", "must be a table of percent, fixed, minimum, source, as_of")
    for field in table:
        if field not in known:
            raise bad(field, f"unknown field (known: {', '.join(sorted(known))})")
    percent = table.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, (int, Decimal)) \
            or not Decimal(percent).is_finite() or not 0 <= percent < 100:
        raise bad("percent", f"must be a number from 0 to below 100, got {shown(percent)}")
    fixed, minimum = table.get("fixed", 0), table.get("minimum")
    for name, value in (("fixed", fixed), ("minimum", minimum)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise bad(name, f"must be a whole number of yen ≥ 0, got {shown(value)}")
    source = table.get("source")
    if not isinstance(source, str) or not source.strip():
        raise bad("source", "missing: say where the rate comes from (a URL, your contract)")
    confirmed = table.get("confirmed", False)
    if not isinstance(confirmed, bool):
        raise bad("confirmed", f"must be true or false, got {shown(confirmed)}")
    others = table.get("other_figures", [])
    if not isinstance(others, list):
        raise bad("other_figures", "must be [[methods.<name>.other_figures]] tables")
    return FeeRule(method=method, percent=Decimal(percent), fixed=fixed, minimum=minimum,
                   source=source, as_of=_as_of(table.get("as_of"), bad), confirmed=confirmed,
                   other_figures=tuple(_rule(method, other, origin, f".other_figures #{n}")
                                       for n, other in enumerate(others, start=1)))


def _as_of(value: Any, bad: Callable[[str, str], PricingError]) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise bad("as_of", f"must be a date such as 2026-11-26, got {shown(value)}")
