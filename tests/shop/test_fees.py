"""Fee quotes in exact whole yen: rounding as Stripe rounds, thresholds, and user pricing files."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from ichido.shop import fees
from ichido.shop.fees import (KONBINI_MAX, KONBINI_MIN, METHODS, FeeRule, PricingTable,
                                load_pricing, parse_pricing, within_limits)
from ichido.errors import ConfigError, IchidoError
from ichido.shop.settings import ShopSettings

DEFAULT = load_pricing()

CUSTOM = """
[methods.card]
percent = 3.25
fixed = 0
minimum = 50
source = "our contract, section 4"
as_of = 2026-04-01

[methods.konbini]
percent = 2.75
fixed = 190
source = "our contract, section 5"
as_of = "2026-04-01"
"""
CUSTOM_TABLE = parse_pricing(CUSTOM, origin="contract.toml")


def oracle_fee(rule: FeeRule, amount: int) -> int:
    """An independent reading of the rule with fractions: round half up is floor(x + 1/2)."""
    variable = Fraction(rule.percent) * amount / 100
    return max(rule.fixed + int(variable + Fraction(1, 2)), rule.minimum or 0)


def test_default_table_has_each_method_with_its_source_and_date() -> None:
    assert set(DEFAULT.rules) == set(METHODS) == {"card", "konbini"}
    assert DEFAULT.rules["card"].percent == Decimal("3.6") and DEFAULT.rules["card"].fixed == 0
    assert DEFAULT.rules["konbini"].percent == Decimal("3.6")
    assert DEFAULT.rules["konbini"].fixed == 220
    for rule in DEFAULT.rules.values():
        assert rule.source and rule.as_of == "2026-11-26"


def test_cheap_konbini_ticket_loses_more_than_half_the_sale() -> None:
    quote = DEFAULT.quote(300, "konbini")  # 220 + 10.8 -> 230.8 -> 231
    assert (quote.fee, quote.net) == (231, 69)
    assert quote.fee_share == Decimal(231) / Decimal(300)
    assert quote.exceeds(Decimal("0.5")) and quote.exceeds(Decimal("0.2"))


@pytest.mark.parametrize("amount, fee", [(1000, 36), (10_000, 360), (300, 11), (1500, 54)])
def test_card_is_3_6_percent(amount: int, fee: int) -> None:
    assert DEFAULT.quote(amount, "card").fee == fee


@pytest.mark.parametrize("method, amount, fee", [
    ("card", 1, 0),          # 0.036 -> 0: a fee can be zero
    ("card", 13, 0),         # 0.468 -> 0
    ("card", 14, 1),         # 0.504 -> 1
    ("card", 125, 5),        # 4.5 -> 5: half up (banker's rounding would give 4)
    ("card", 1625, 59),      # 58.5 -> 59 (banker's: 58)
    ("card", 375, 14),       # 13.5 -> 14
    ("konbini", 120, 224),   # 4.32 -> 4
    ("konbini", 125, 225),   # 4.5 -> 5
    ("konbini", 300_000, 11_020),
])
def test_fee_is_rounded_to_the_yen_half_up(method: str, amount: int, fee: int) -> None:
    quote = DEFAULT.quote(amount, method)
    assert quote.fee == fee and quote.net == amount - fee


@pytest.mark.parametrize("method, limit, lowest", [
    ("konbini", "0.5", 474),   # 473: 237 > 236.5; 474: 237 == 237.0 (at the limit is within)
    ("konbini", "0.2", 1340),  # 1339: 268 > 267.8; 1340: 268 == 268.0
    ("card", "0.04", 100),     # 99: 4 > 3.96; 100: 4 == 4.0
])
def test_share_crosses_the_limit_at_the_break_even_price(method: str, limit: str,
                                                         lowest: int) -> None:
    assert DEFAULT.quote(lowest - 1, method).exceeds(Decimal(limit))
    assert not DEFAULT.quote(lowest, method).exceeds(Decimal(limit))
    assert DEFAULT.break_even(method, Decimal(limit)) == lowest


@pytest.mark.parametrize("table", [DEFAULT, CUSTOM_TABLE], ids=["default", "custom"])
@pytest.mark.parametrize("limit", ["0.037", "0.04", "0.05", "0.2", "0.5", "0.9"])
def test_break_even_matches_brute_force(table: PricingTable, limit: str) -> None:
    share = Decimal(limit)
    for method in METHODS:
        lowest = table.break_even(method, share)
        if lowest is None:
            continue
        over = [a for a in range(1, lowest + 3000) if table.quote(a, method).exceeds(share)]
        assert (max(over) + 1 if over else 1) == lowest, (method, limit)


def test_no_break_even_when_the_limit_is_at_or_below_the_percentage() -> None:
    assert DEFAULT.break_even("card", Decimal("0.036")) is None
    assert DEFAULT.break_even("konbini", Decimal("0.01")) is None


def test_custom_file_overrides_the_default(tmp_path: Path) -> None:
    path = tmp_path / "contract.toml"
    path.write_text(CUSTOM, "utf-8")
    by_path = load_pricing(path)
    by_env = load_pricing(ShopSettings.from_env({"ICHIDO_PRICING": str(path)}).pricing_path)
    for table in (by_path, by_env):
        assert table.quote(300, "konbini").fee == 198       # 190 + 8.25 -> 8
        assert table.quote(1000, "card").fee == 50          # 32.5 -> 33, below the minimum 50
        assert table.quote(10_000, "card").fee == 325
        assert table.rules["konbini"].as_of == "2026-04-01"
    assert by_env.origin == str(path)
    assert load_pricing().quote(300, "konbini").fee == 231   # the cached default is untouched


def test_unknown_method_and_bad_amounts_are_named_errors() -> None:
    with pytest.raises(IchidoError) as err:
        DEFAULT.quote(1000, "paypay")
    assert err.value.code == "unknown_method" and "paypay" in err.value.message
    for amount in (0, -1, True, 1.5, "300"):
        with pytest.raises(IchidoError) as err:
            DEFAULT.quote(amount, "card")  # type: ignore[arg-type]
        assert err.value.code == "invalid_amount"


def test_quote_json_and_stripe_fee_details() -> None:
    quote = DEFAULT.quote(300, "konbini")
    assert quote.to_json() == {"amount": 300, "method": "konbini", "fee": 231, "net": 69,
                               "fee_share": 0.77, "currency": "jpy"}
    assert quote.details() == [{"amount": 231, "currency": "jpy", "type": "stripe_fee",
                                "description": "Stripe processing fees", "application": None}]


def test_konbini_limits() -> None:
    assert (KONBINI_MIN, KONBINI_MAX) == (120, 300_000)
    assert within_limits("konbini", 120) and within_limits("konbini", 300_000)
    assert not within_limits("konbini", 119) and not within_limits("konbini", 300_001)
    assert within_limits("card", 10_000_000)


@pytest.mark.parametrize("text, method, field", [
    (CUSTOM.replace("percent = 3.25", "percent = -1"), "card", "percent"),
    (CUSTOM.replace("percent = 3.25", "percent = 100"), "card", "percent"),
    (CUSTOM.replace("percent = 3.25", 'percent = "3.25"'), "card", "percent"),
    (CUSTOM.replace("percent = 3.25", "percent = nan"), "card", "percent"),
    (CUSTOM.replace("fixed = 190", "fixed = 190.5"), "konbini", "fixed"),
    (CUSTOM.replace("fixed = 190", "fixed = -1"), "konbini", "fixed"),
    (CUSTOM.replace("fixed = 190", "fixed = true"), "konbini", "fixed"),
    (CUSTOM.replace("minimum = 50", "minimum = -50"), "card", "minimum"),
    (CUSTOM.replace('source = "our contract, section 5"', 'source = ""'), "konbini", "source"),
    (CUSTOM.replace('source = "our contract, section 4"\n', ""), "card", "source"),
    (CUSTOM.replace('as_of = "2026-04-01"', 'as_of = "yesterday"'), "konbini", "as_of"),
    (CUSTOM.replace("as_of = 2026-04-01", "as_of = 2026-04-01T10:00:00"), "card", "as_of"),
    (CUSTOM.replace("minimum = 50", "minimun = 50"), "card", "minimun"),
    (CUSTOM.replace("[methods.konbini]", "[methods.konbni]"), "konbni", "unknown method"),
    (CUSTOM.split("[methods.konbini]")[0], "konbini", "missing"),
])
def test_bad_pricing_file_names_method_and_field(text: str, method: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pricing(text, origin="contract.toml")
    message = err.value.message
    assert "contract.toml" in message and f"[methods.{method}]" in message and field in message


@pytest.mark.parametrize("text", ["this is = not toml [", "", "[methods]\n"])
def test_unusable_pricing_file_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_pricing(text)


def test_missing_pricing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read pricing file"):
        load_pricing(tmp_path / "nope.toml")


def test_default_is_read_once() -> None:
    fees._default_table.cache_clear()
    assert load_pricing() is load_pricing()


@given(amount=st.integers(min_value=1, max_value=10**7), method=st.sampled_from(METHODS),
       custom=st.booleans())
def test_fee_plus_net_is_the_amount(amount: int, method: str, custom: bool) -> None:
    table = CUSTOM_TABLE if custom else DEFAULT
    quote = table.quote(amount, method)
    assert quote.fee + quote.net == amount
    assert quote.fee >= 0
    assert quote.fee == oracle_fee(table.rules[method], amount)
    assert quote.fee_share == Decimal(quote.fee) / Decimal(amount)
