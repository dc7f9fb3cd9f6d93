"""The emulator charges the fee rule it is given as data, and imports nothing of the shop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from decimal import Decimal

import httpx

from ichido.emulator import Emulator, EmulatorServer, fees
from tests.emulator.support import KEY, card_params, client, konbini_params
from tests.emulator.test_bank_transfer import transfer_params
from tests.emulator.test_paypay import paypay_params

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ichido" / "emulator"
CONTRACT = """
[methods.card]
percent = 2.5
fixed = 10
source = "our contract"
as_of = 2026-12-01

[methods.konbini]
percent = 1.0
fixed = 100
minimum = 190
source = "our contract"
as_of = 2026-12-01
"""


def charged_fee(emulator: Emulator, params: dict[str, object]) -> int:
    with EmulatorServer(emulator) as server:
        sdk = client(server.url)
        pi = sdk.v1.payment_intents.create(params=params)
        emulator.advance(180)  # a konbini voucher gets paid
        pi = sdk.v1.payment_intents.retrieve(pi.id, params={
            "expand": ["latest_charge.balance_transaction"]})
        txn = pi.latest_charge.balance_transaction
        assert txn.net == txn.amount - txn.fee and txn.fee_details[0].amount == txn.fee
        return txn.fee


def test_a_pricing_file_sets_the_fee_charged(tmp_path: Path) -> None:
    path = tmp_path / "pricing.toml"
    path.write_text(CONTRACT)
    assert charged_fee(Emulator(api_key=KEY, pricing=path), card_params(amount=3000)) == 85
    # 100 + 1 % of ¥1,500 = 115, lifted to the minimum of 190.
    assert charged_fee(Emulator(api_key=KEY, pricing=str(path)), konbini_params()) == 190


def test_a_mapping_works_and_halves_round_up() -> None:
    said = {"source": "a test", "as_of": "2026-12-01"}
    rules = {"card": {"percent": Decimal("3.5"), **said},
             "konbini": {"percent": 0, "fixed": 0, **said}}
    assert charged_fee(Emulator(api_key=KEY, pricing=rules), card_params(amount=300)) == 11
    assert charged_fee(Emulator(api_key=KEY, pricing={"methods": rules}),
                       card_params(amount=1010)) == 35  # 10.5 -> 11 (not 10); 35.35 -> 35


def test_the_default_is_the_emulators_own_data() -> None:
    table = fees.load()
    assert (table.fee(3000, "card"), table.fee(300, "konbini")) == (108, 231)
    assert (table.fee(1200, "paypay"), table.fee(10_000, "customer_balance")) == (48, 150)
    assert table.origin.endswith("(packaged default)")
    figures = [f for rule in table.rules.values() for f in (rule, *rule.other_figures)]
    assert figures and all(f.confirmed is False and f.source for f in figures)  # UNCONFIRMED


MERCHANT = """
[methods.paypay]
percent = 3.25
source = "our PayPay contract"
as_of = 2026-12-01
confirmed = true

[methods.customer_balance]
percent = 1.5
source = "a third-party summary"
as_of = 2026-11-26
confirmed = false

[[methods.customer_balance.other_figures]]
percent = 0
fixed = 2500
source = "another summary: per deposit"
as_of = 2026-11-26
"""


def test_a_merchant_file_naming_paypay_replaces_only_what_it_names(tmp_path: Path) -> None:
    """The shop's pricing format (``confirmed``, ``other_figures``, any subset of methods)
    starts the emulator too: ``ICHIDO_PRICING`` is one file for both."""
    path = tmp_path / "contract.toml"
    path.write_text(MERCHANT)
    table = Emulator(api_key=KEY, pricing=path).pricing
    assert table.fee(300, "paypay") == 10  # 9.75 -> 10
    assert table.rules["paypay"].confirmed and not table.rules["customer_balance"].confirmed
    assert [o.fixed for o in table.rules["customer_balance"].other_figures] == [2500]
    assert table.rules["konbini"] == fees.load().rules["konbini"]


def fee_of_charge(sdk: object, pi_id: str) -> tuple[str, int, list[int]]:
    pi = sdk.v1.payment_intents.retrieve(pi_id, params={  # type: ignore[attr-defined]
        "expand": ["latest_charge.balance_transaction"]})
    txn = pi.latest_charge.balance_transaction
    assert txn.net == txn.amount - txn.fee
    return (pi.latest_charge.payment_method_details.type, txn.fee,
            [d.amount for d in txn.fee_details])


def test_paypay_and_bank_transfer_charges_carry_their_own_methods_fee() -> None:
    """Not the card rate: the shop's fee report reads these balance transactions per method."""
    emulator = Emulator(api_key=KEY)
    with EmulatorServer(emulator) as server:
        sdk = client(server.url)
        pi = sdk.v1.payment_intents.create(params=paypay_params(1200))
        httpx.post(f"{server.url}/_emulator/payment_intents/{pi.id}/authorize",
                   headers={"Authorization": f"Bearer {KEY}"}).raise_for_status()
        assert fee_of_charge(sdk, pi.id) == ("paypay", 48, [48])  # 3.98 % of 1,200 = 47.76
        buyer = sdk.v1.customers.create(params={"email": "hanako@test.com"}).id
        pi = sdk.v1.payment_intents.create(params=transfer_params(buyer, 10_000))
        sdk.v1.test_helpers.customers.fund_cash_balance(
            buyer, params={"amount": 10_000, "currency": "jpy"})
        assert fee_of_charge(sdk, pi.id) == ("customer_balance", 150, [150])  # 1.5 %


@pytest.mark.parametrize("rules, problem", [
    ({"bitcoin": {"percent": 1}}, "unknown method"),
    ({"card": {"percent": 100}}, "percent"),
    ({"card": {"percent": 1, "fixed": -1}}, "fixed"),
    ({"card": {"percent": 1, "fixed": 1.5}}, "fixed"),
    ({"card": {"percent": "x"}}, "percent"),
    ({"card": {"percent": 1, "source": "s", "as_of": "2026-12-01", "rate": 2}},
     "unknown field"),
    ({"card": {"percent": 1, "as_of": "2026-12-01"}}, "source"),
    ({"paypay": {"percent": 1, "source": "s", "as_of": "2026-12-01", "confirmed": "yes"}},
     "confirmed"),
])
def test_bad_pricing_is_refused_at_start(rules: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Emulator(pricing=rules)


def test_a_missing_or_broken_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope.toml"):
        Emulator(pricing=tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[methods.card\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        Emulator(pricing=broken)


def imported(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports (``from a import b`` counts as ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_emulator_imports_only_itself_and_the_signature_helper() -> None:
    """DESIGN: the emulator shares no code with the receiver except the signature helper, and
    knows nothing of the shop (it takes the fee rule as data)."""
    ours = {(path.name, name) for path in PACKAGE.glob("*.py") for name in imported(path)
            if name.split(".")[0] == "ichido"}
    outside = {(f, n) for f, n in ours if not n.startswith(("ichido.emulator.",
                                                             "ichido.signature"))}
    assert outside == set()
    assert ("webhooks.py", "ichido.signature") in ours
