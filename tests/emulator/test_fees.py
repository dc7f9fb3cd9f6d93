"""The emulator charges the fee rule it is given as data, and imports nothing of the shop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ichido.emulator import Emulator, EmulatorServer, fees
from tests.emulator.support import KEY, card_params, client, konbini_params

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
    rules = {"card": {"percent": "3.5"}, "konbini": {"percent": 0, "fixed": 0}}
    assert charged_fee(Emulator(api_key=KEY, pricing=rules), card_params(amount=300)) == 11
    assert charged_fee(Emulator(api_key=KEY, pricing={"methods": rules}),
                       card_params(amount=1010)) == 35  # 10.5 -> 11 (not 10); 35.35 -> 35


def test_the_default_is_the_emulators_own_data() -> None:
    table = fees.load()
    assert (table.fee(3000, "card"), table.fee(300, "konbini")) == (108, 231)
    assert table.origin == "packaged default"


@pytest.mark.parametrize("rules, problem", [
    ({"card": {"percent": 3.6}}, "exactly the methods"),
    ({"card": {"percent": 100}, "konbini": {"percent": 1}}, "percent"),
    ({"card": {"percent": 1, "fixed": -1}, "konbini": {"percent": 1}}, "fixed"),
    ({"card": {"percent": 1, "fixed": 1.5}, "konbini": {"percent": 1}}, "fixed"),
    ({"card": {"percent": "x"}, "konbini": {"percent": 1}}, "percent"),
    ({"card": {"percent": 1, "rate": 2}, "konbini": {"percent": 1}}, "a table of"),
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
