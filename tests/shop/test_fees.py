"""Fee quotes in exact whole yen: rounding as Stripe rounds, thresholds, and user pricing files."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from ichido.emulator import Emulator
from ichido.shop import fees
from ichido.shop.fees import (KONBINI_MAX, KONBINI_MIN, METHODS, PAYPAY_MIN, FeeRule,
                              PricingTable, load_pricing, parse_pricing, within_limits)
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
CUSTOM_TABLE = parse_pricing(CUSTOM, origin="contract.toml", base=DEFAULT)


def oracle_fee(rule: FeeRule, amount: int) -> int:
    """An independent reading of the rule with fractions: round half up is floor(x + 1/2)."""
    variable = Fraction(rule.percent) * amount / 100
    return max(rule.fixed + int(variable + Fraction(1, 2)), rule.minimum or 0)


def test_default_table_has_each_method_with_its_source_and_date() -> None:
    assert set(DEFAULT.rules) == set(METHODS) == {"card", "konbini", "paypay",
                                                   "customer_balance"}
    assert DEFAULT.rules["card"].percent == Decimal("3.6") and DEFAULT.rules["card"].fixed == 0
    assert DEFAULT.rules["konbini"].percent == Decimal("3.6")
    assert DEFAULT.rules["konbini"].fixed == 220
    assert (DEFAULT.rules["paypay"].percent, DEFAULT.rules["paypay"].fixed) == (Decimal("3.98"), 0)
    bank = DEFAULT.rules["customer_balance"]
    assert (bank.percent, bank.fixed) == (Decimal("1.5"), 0)
    assert [(o.percent, o.fixed) for o in bank.other_figures] == [(0, 2500)]  # per deposit
    for rule in DEFAULT.rules.values():
        assert rule.source and rule.as_of == "2026-11-26"


def test_every_public_figure_is_marked_unconfirmed_and_sourced() -> None:
    """No figure could be checked against Stripe's own page: each one says so, the disputed
    ones included, and each keeps its own source and date."""
    figures = [f for rule in DEFAULT.rules.values() for f in (rule, *rule.other_figures)]
    assert len(figures) == 7  # konbini: two other figures; bank transfer: one
    for figure in figures:
        assert figure.confirmed is False and figure.source.strip() and figure.as_of
    assert DEFAULT.rules["konbini"].other_figures[0].as_of == "2022-03-04"


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


def test_a_contract_file_replaces_only_the_methods_it_names(tmp_path: Path) -> None:
    """A merchant enters its own rates for the methods its contract covers; the others keep
    the public (unconfirmed) figures."""
    path = tmp_path / "contract.toml"
    path.write_text('[methods.paypay]\npercent = 3.25\nsource = "our PayPay contract"\n'
                    'as_of = 2026-12-01\nconfirmed = true\n', "utf-8")
    table = load_pricing(path)
    assert table.quote(300, "paypay").fee == 10  # 9.75 -> 10
    assert table.rules["paypay"].confirmed and table.rules["paypay"].source == "our PayPay contract"
    assert table.rules["konbini"] == DEFAULT.rules["konbini"]
    assert not table.rules["card"].confirmed


def test_a_quote_lists_every_method_and_names_the_cheapest_non_card_one() -> None:
    """The seed's ¥300 ticket: konbini is refused, and the answer is PayPay (¥12), not the
    bank transfer's ¥5, because another source puts that at ¥2,500 per deposit."""
    comparison = DEFAULT.compare(300, "0.2")
    fees_by_method = {q.method: (q.fee, q.exceeds("0.2")) for q in comparison.quotes}
    assert fees_by_method == {"card": (11, False), "konbini": (231, True),
                              "paypay": (12, False), "customer_balance": (5, False)}
    assert comparison.allowed() == ["card", "paypay", "customer_balance"]
    suggested = comparison.suggestion()
    assert suggested is not None and (suggested.method, suggested.fee) == ("paypay", 12)
    body = comparison.to_json()
    assert body["suggested"] == "paypay" and body["allowed"] == comparison.allowed()
    assert [m["highest_fee_on_file"] for m in body["methods"]] == [11, 231, 12, 2500]
    assert not any(m["confirmed"] for m in body["methods"])


def test_the_suggestion_falls_back_to_the_figure_in_use_and_never_names_card() -> None:
    # Only the bank transfer fits at 2%: it is named though another figure disputes it.
    assert DEFAULT.compare(300, "0.02").suggestion().method == "customer_balance"  # type: ignore[union-attr]
    # Above ¥166,666 the bank transfer is within the limit by every figure, and cheapest.
    assert DEFAULT.compare(200_000, "0.2").suggestion().method == "customer_balance"  # type: ignore[union-attr]
    only_card = DEFAULT.compare(300, "0.2", ["card", "konbini"])
    assert only_card.allowed() == ["card"] and only_card.suggestion() is None
    # Below PayPay's minimum Stripe refuses the amount, whatever the fee.
    tiny = DEFAULT.compare(PAYPAY_MIN - 1, "0.5")
    assert not tiny.accepted("paypay") and "paypay" not in tiny.allowed()


def test_unknown_method_and_bad_amounts_are_named_errors() -> None:
    with pytest.raises(IchidoError) as err:
        DEFAULT.quote(1000, "alipay")
    assert err.value.code == "unknown_method" and "alipay" in err.value.message
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


def test_konbini_and_paypay_limits() -> None:
    assert (KONBINI_MIN, KONBINI_MAX) == (120, 300_000)
    assert within_limits("konbini", 120) and within_limits("konbini", 300_000)
    assert not within_limits("konbini", 119) and not within_limits("konbini", 300_001)
    assert within_limits("paypay", 50) and not within_limits("paypay", 49)
    assert within_limits("card", 10_000_000) and within_limits("customer_balance", 10_000_000)


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
    (CUSTOM.replace("minimum = 50", "confirmed = 1"), "card", "confirmed"),
    (CUSTOM + "[[methods.konbini.other_figures]]\npercent = 1\nsource = \"x\"\n",
     "konbini.other_figures #1", "as_of"),
])
def test_bad_pricing_file_names_method_and_field(text: str, method: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pricing(text, origin="contract.toml")  # no base: every method is required
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


def test_fees_quote_and_rates_commands_name_the_method_and_every_source(tmp_path: Path) -> None:
    """``ichido fees quote --amount 300``: every method's share and the suggestion;
    ``ichido fees rates``: each figure with its source, date and (un)confirmed mark; a
    merchant's contract (``--pricing``) shows as confirmed."""
    from tests.support import run_cli_many

    contract = tmp_path / "contract.toml"
    contract.write_text('[methods.konbini]\npercent = 2.75\nfixed = 0\nsource = "contract §5"\n'
                        'as_of = 2026-12-01\nconfirmed = true\n', "utf-8")
    quote, text, rates, ours = run_cli_many(
        ["fees", "quote", "--amount", "300", "--json"], ["fees", "quote", "--amount", "300"],
        ["fees", "rates", "--json"], ["fees", "quote", "--amount", "300", "--json",
                                      "--pricing", str(contract)])
    for done in (quote, text, rates, ours):
        assert done.returncode == 0, done.stderr
    body = json.loads(quote.stdout)
    assert body["suggested"] == "paypay" and body["allowed"] == ["card", "paypay",
                                                                 "customer_balance"]
    assert [(m["method"], m["fee"]) for m in body["methods"]] == [
        ("card", 11), ("konbini", 231), ("paypay", 12), ("customer_balance", 5)]
    assert "cheapest method other than card within the limit: paypay (¥12)" in text.stdout
    table = json.loads(rates.stdout)["methods"]
    assert set(table) == set(METHODS)
    assert all(not f["confirmed"] and f["source"] and f["as_of"]
               for rule in table.values() for f in (rule, *rule["other_figures"]))
    # The contract's konbini (¥8 on ¥300) is now the cheapest fitting method, and confirmed.
    mine = json.loads(ours.stdout)
    assert mine["suggested"] == "konbini"
    assert [m["confirmed"] for m in mine["methods"]] == [False, True, False, False]


SHOP_PRICING = Path(fees.__file__).with_name("pricing.toml")


@pytest.mark.parametrize("amount", [50, 120, 300, 1200, 1500, 10_000, 300_000])
def test_the_emulator_charges_what_the_shop_predicts(amount: int) -> None:
    """Both read one format through one reader; by default the local Stripe charges, method
    by method, the fee the shop's guard quoted, so its fee report measures the prediction."""
    charged = Emulator(pricing=None).pricing
    for method in METHODS:
        assert charged.fee(amount, method) == DEFAULT.quote(amount, method).fee, method


def test_the_emulator_starts_with_the_shops_pricing_files(tmp_path: Path) -> None:
    """``ICHIDO_PRICING`` feeds both: the packaged file, and a merchant's naming PayPay."""
    assert Emulator(pricing=SHOP_PRICING).pricing.rules == DEFAULT.rules
    path = tmp_path / "contract.toml"
    path.write_text('[methods.paypay]\npercent = 3.25\nsource = "our PayPay contract"\n'
                    'as_of = 2026-12-01\nconfirmed = true\n', "utf-8")
    assert Emulator(pricing=path).pricing.rules["paypay"] == load_pricing(path).rules["paypay"]
