"""The catalogue loader: every mistake is named by product and field; the audit flags fees."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ichido.shop.catalog import (KINDS, AuditRow, Catalog, Product, audit, load_catalog,
                                   parse_catalog)
from ichido.shop.fees import load_pricing
from ichido.errors import ConfigError, IchidoError

EXAMPLE = Path(__file__).resolve().parents[2] / "src/ichido/shop/catalog.example.toml"

TICKET = """
[[products]]
id = "live-2026-12"
name = "Online live, December"
price = 1500
kind = "video_ticket"
methods = ["card", "konbini"]
"""
SHIRT = """
[[products]]
id = "tour-tshirt"
name = "Tour T-shirt"
price = 3500
kind = "physical"
stock = 20
methods = ["card", "konbini"]
"""


def test_example_catalogue_loads_in_file_order() -> None:
    catalog = load_catalog(EXAMPLE)
    assert [p.id for p in catalog] == ["mv-premiere-300", "live-2026-12", "tour-tshirt",
                                       "live-acrylic-stand", "stream-monthly", "stream-yearly"]
    assert {p.kind for p in catalog} == set(KINDS)
    assert catalog.get("tour-tshirt") == Product(id="tour-tshirt", name="Tour T-shirt",
                                                 price=3500, kind="physical",
                                                 methods=("card", "konbini"), stock=20)
    assert catalog.get("live-2026-12").stock is None
    assert len(catalog) == 6 and "tour-tshirt" in catalog and "nope" not in catalog


def test_unknown_product_is_a_named_error() -> None:
    with pytest.raises(IchidoError) as err:
        load_catalog(EXAMPLE).get("nope")
    assert err.value.code == "unknown_product" and "nope" in err.value.message


def test_audit_flags_only_the_cheap_konbini_ticket_at_0_2() -> None:
    rows = audit(load_catalog(EXAMPLE), load_pricing(), Decimal("0.2"))
    assert len(rows) == 14  # the tickets take PayPay, the ¥1,500 one bank transfer too
    assert [(r.product_id, r.method) for r in rows if r.over_limit] == [
        ("mv-premiere-300", "konbini")]
    cheap = rows[1]
    assert cheap == AuditRow(product_id="mv-premiere-300", price=300, method="konbini",
                             name="Music video premiere (watch party ticket)", fee=231,
                             fee_share=Decimal(231) / Decimal(300), over_limit=True)
    assert cheap.to_json()["net"] == 69 and cheap.to_json()["fee_share"] == 0.77


def test_audit_at_the_exact_share_is_not_over_the_limit() -> None:
    # ¥474 by konbini: fee 220 + 17 = 237, exactly half.
    catalog = parse_catalog(TICKET.replace("price = 1500", "price = 474"))
    (card, konbini) = audit(catalog, load_pricing(), "0.5")
    assert konbini.fee == 237 and not konbini.over_limit
    (card, konbini) = audit(catalog, load_pricing(), Decimal("0.49"))
    assert konbini.over_limit and not card.over_limit


@pytest.mark.parametrize("price", [120, 300_000])
def test_konbini_limits_are_inclusive(price: int) -> None:
    catalog = parse_catalog(TICKET.replace("price = 1500", f"price = {price}"))
    assert catalog.get("live-2026-12").price == price


def test_card_only_item_may_cost_less_than_konbini_allows() -> None:
    text = TICKET.replace("price = 1500", "price = 100").replace('"card", "konbini"', '"card"')
    assert parse_catalog(text).get("live-2026-12").methods == ("card",)


@pytest.mark.parametrize("text, product, field", [
    (TICKET.replace('id = "live-2026-12"\n', ""), "product #1", "id"),
    (TICKET.replace('id = "live-2026-12"', 'id = ""'), "product #1", "id"),
    (TICKET.replace('id = "live-2026-12"', "id = 7"), "product #1", "id"),
    (TICKET + TICKET, "product #2 (id 'live-2026-12')", "duplicate of product #1"),
    (TICKET.replace('name = "Online live, December"\n', ""), "'live-2026-12'", "name"),
    (TICKET.replace("price = 1500", "price = 0"), "'live-2026-12'", "price"),
    (TICKET.replace("price = 1500", "price = -5"), "'live-2026-12'", "price"),
    (TICKET.replace("price = 1500", "price = 1500.0"), "'live-2026-12'", "price"),
    (TICKET.replace("price = 1500", 'price = "1500"'), "'live-2026-12'", "price"),
    (TICKET.replace("price = 1500\n", ""), "'live-2026-12'", "price"),
    (TICKET.replace('"video_ticket"', '"dvd"'), "'live-2026-12'", "kind"),
    (TICKET.replace('"card", "konbini"', '"card", "alipay"'), "'live-2026-12'", "methods"),
    (TICKET.replace("price = 1500", "price = 49").replace('"konbini"', '"paypay"'),
     "'live-2026-12'", "paypay takes ¥50"),
    (TICKET.replace('["card", "konbini"]', "[]"), "'live-2026-12'", "methods"),
    (TICKET.replace('["card", "konbini"]', '"card"'), "'live-2026-12'", "methods"),
    (TICKET.replace('"card", "konbini"', '"card", "card"'), "'live-2026-12'", "methods"),
    (TICKET.replace("price = 1500", "price = 119"), "'live-2026-12'", "methods"),
    (TICKET.replace("price = 1500", "price = 300001"), "'live-2026-12'", "methods"),
    (TICKET.replace("price = 1500", "price = 1500\nstock = 3"), "'live-2026-12'", "stock"),
    (SHIRT.replace("stock = 20\n", ""), "'tour-tshirt'", "stock"),
    (SHIRT.replace("stock = 20", "stock = -1"), "'tour-tshirt'", "stock"),
    (SHIRT.replace("stock = 20", "stock = 2.5"), "'tour-tshirt'", "stock"),
    (SHIRT.replace("stock = 20", "stok = 20"), "'tour-tshirt'", "stok"),
    (TICKET + SHIRT.replace("price = 3500", "price = 0"), "product #2 (id 'tour-tshirt')",
     "price"),
])
def test_every_catalogue_error_names_product_and_field(text: str, product: str,
                                                       field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_catalog(text, origin="shop.toml")
    message = err.value.message
    assert message.startswith("shop.toml: product #")
    assert product in message and field in message, message


def test_konbini_limit_error_says_why() -> None:
    with pytest.raises(ConfigError) as err:
        parse_catalog(TICKET.replace("price = 1500", "price = 100"), origin="shop.toml")
    assert err.value.message == (
        "shop.toml: product #1 (id 'live-2026-12'): methods: konbini takes ¥120–¥300,000 "
        "per payment, but price is ¥100: remove konbini or change the price")


@pytest.mark.parametrize("text", ["", "products = []", "[[product]]\nid = 'x'", "products = [1]",
                                  "not = toml ["])
def test_unusable_catalogue_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_catalog(text)


def test_missing_catalogue_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read catalogue"):
        load_catalog(tmp_path / "nope.toml")


def test_catalog_built_in_code_rejects_duplicate_ids() -> None:
    product = Product(id="a", name="A", price=500, kind="video_ticket", methods=("card",))
    with pytest.raises(ConfigError, match="duplicate"):
        Catalog([product, product])


# -- subscription plans ---------------------------------------------------------------------------

PLANS = """
[[products]]
id = "stream-monthly"
name = "Streaming pass, monthly"
price = 980
kind = "subscription"
interval = "month"
trial_days = 7
methods = ["card"]

[[products]]
id = "stream-lite"
name = "Streaming lite, monthly"
price = 300
kind = "subscription"
interval = "month"
methods = ["card", "konbini"]
"""


def test_plans_load_with_their_interval_and_trial() -> None:
    catalog = parse_catalog(PLANS)
    monthly = catalog.get("stream-monthly")
    assert (monthly.kind, monthly.interval, monthly.trial_days, monthly.price) == (
        "subscription", "month", 7, 980)
    assert catalog.get("stream-lite").trial_days is None


@pytest.mark.parametrize("lines, field", [
    ('interval = "week"\ntrial_days = 7', "interval"),
    ('interval = "month"\ntrial_days = 0', "trial_days"),
    ('interval = "month"\ntrial_days = "7"', "trial_days")])
def test_a_bad_plan_field_is_named(lines: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_catalog(PLANS.replace('interval = "month"\ntrial_days = 7', lines, 1))
    assert "stream-monthly" in err.value.message and field in err.value.message


def test_only_plans_have_an_interval() -> None:
    with pytest.raises(ConfigError) as err:
        parse_catalog(TICKET.replace('kind = "video_ticket"',
                                     'kind = "video_ticket"\ninterval = "month"'))
    assert "interval" in err.value.message and "only subscriptions" in err.value.message


@pytest.mark.parametrize("method", ["paypay", "customer_balance"])
def test_a_plan_cannot_be_billed_by_paypay_or_bank_transfer(method: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_catalog(PLANS.replace('methods = ["card"]', f'methods = ["card", "{method}"]'))
    assert "stream-monthly" in err.value.message and f"not {method}" in err.value.message


def test_the_audit_suggests_a_method_for_each_product_it_refuses(tmp_path: Path) -> None:
    """The seed's ¥300 ticket gets an answer: offer PayPay (¥12); a product that does not list
    a fitting method is told which to add; a plan is told a price (no plan method fits)."""
    path = tmp_path / "catalog.toml"
    path.write_text(PLANS + TICKET.replace("price = 1500", "price = 300")
                    .replace('id = "live-2026-12"', 'id = "cheap"') + TICKET.replace(
                        "price = 1500", "price = 300").replace(
                        '"card", "konbini"', '"card", "konbini", "paypay"'))
    done = subprocess.run([sys.executable, "-m", "ichido", "fees", "audit", str(path),
                           "--max-share", "0.2", "--json"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["offenders"] == ["stream-lite/konbini", "cheap/konbini",
                                   "live-2026-12/konbini"]
    advice = {s["product"]: (s["method"], s["fee"], s["listed"], s["lowest_price"])
              for s in report["suggestions"]}
    assert advice == {"live-2026-12": ("paypay", 12, True, None),
                      "cheap": ("paypay", 12, False, None),
                      "stream-lite": (None, None, False, 1340)}
    text = subprocess.run([sys.executable, "-m", "ichido", "fees", "audit", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    assert "konbini takes 77.0% of ¥300; offer paypay: ¥12 (4.0%)" in text
    assert "add to its methods paypay: ¥12 (4.0%)" in text
    assert "no method fits at this price; from ¥1,340 one does" in text


def test_fees_audit_refuses_a_300_yen_monthly_konbini_plan(tmp_path: Path) -> None:
    """Each renewal's invoice pays ¥220 + 3.6%: ¥231 of every ¥300, so the design is refused
    before release."""
    path = tmp_path / "plans.toml"
    path.write_text(PLANS)
    done = subprocess.run([sys.executable, "-m", "ichido", "fees", "audit", str(path),
                           "--max-share", "0.2", "--json"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["offenders"] == ["stream-lite/konbini"]
    lite = [r for r in report["rows"] if r["product"] == "stream-lite" and
            r["method"] == "konbini"][0]
    assert (lite["fee"], lite["interval"], lite["over_limit"]) == (231, "month", True)
