"""The fee Stripe keeps on each charge, from pricing data handed to the emulator at start.

Why data: Stripe decides its fees, the shop only predicts them. The emulator plays Stripe, so it
takes the rule as data (``Emulator(pricing=...)``, ``ichido emulator --pricing FILE``) and imports
none of the shop's code; a test that gives both the same file checks the prediction against
what the emulator "charged". Without one it reads ``pricing.toml`` beside this module.

The file format is the shop's pricing file: ``[methods.<card|konbini>]`` with ``percent``,
``fixed`` (yen), an optional ``minimum`` (yen), and ``source`` / ``as_of`` (read, not used). A
mapping ``{"card": {"percent": "3.6"}, ...}`` (or ``{"methods": {...}}``) works too.
``fee = max(minimum, fixed + round_half_up(amount × percent / 100))``: Stripe rounds its fee to
the currency's unit, halves up (support.stripe.com/questions/rounding-rules-for-stripe-fees).
"""

from __future__ import annotations

import importlib.resources
import os
import tomllib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

METHODS = ("card", "konbini")
_FIELDS = {"percent", "fixed", "minimum", "source", "as_of"}


@dataclass(frozen=True)
class FeeRule:
    percent: Decimal
    fixed: int = 0
    minimum: int | None = None

    def fee(self, amount: int) -> int:
        variable = (Decimal(amount) * self.percent / 100).quantize(Decimal(1), ROUND_HALF_UP)
        return max(self.fixed + int(variable), self.minimum or 0)


@dataclass(frozen=True)
class Pricing:
    rules: Mapping[str, FeeRule]
    origin: str = "<memory>"

    def fee(self, amount: int, method: str) -> int:
        return self.rules[method].fee(amount)


def load(source: Any = None) -> Pricing:
    """A ``Pricing`` from a table, a mapping, a TOML file path, or (None) the packaged default."""
    if isinstance(source, Pricing):
        return source
    if isinstance(source, Mapping):
        return parse(source, "<mapping>")
    if source is None:
        text = importlib.resources.files("ichido.emulator").joinpath("pricing.toml") \
            .read_text("utf-8")
        return parse(_toml(text, "ichido/emulator/pricing.toml"), "packaged default")
    path = Path(os.fspath(source))
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ValueError(f"pricing file {path}: {exc.strerror or exc}") from None
    return parse(_toml(text, str(path)), str(path))


def _toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{origin}: not valid TOML: {exc}") from None


def parse(doc: Mapping[str, Any], origin: str) -> Pricing:
    methods = doc.get("methods", doc)
    if not isinstance(methods, Mapping) or set(methods) != set(METHODS):
        raise ValueError(f"{origin}: pricing must give exactly the methods {', '.join(METHODS)}")
    return Pricing({name: _rule(name, methods[name], origin) for name in METHODS}, origin)


def _rule(method: str, table: Any, origin: str) -> FeeRule:
    where = f"{origin}: [methods.{method}]"
    if not isinstance(table, Mapping) or not set(table) <= _FIELDS:
        raise ValueError(f"{where}: a table of {', '.join(sorted(_FIELDS))}")
    try:
        percent = Decimal(str(table.get("percent")))
    except InvalidOperation:
        raise ValueError(f"{where} percent: not a number") from None
    fixed, minimum = table.get("fixed", 0), table.get("minimum")
    if not percent.is_finite() or not 0 <= percent < 100:
        raise ValueError(f"{where} percent: from 0 to below 100")
    for name, value in (("fixed", fixed), ("minimum", minimum)):
        if value is not None and (type(value) is not int or value < 0):
            raise ValueError(f"{where} {name}: a whole number of yen, 0 or more")
    return FeeRule(percent, fixed, minimum)
