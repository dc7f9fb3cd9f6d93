"""Every reason code ichido can answer or print is in one catalogue (ichido.errors.REASONS,
typed by ichido.errors.ReasonCode), and the README's table of codes is that catalogue; the
shop's codes are in its own (ichido.shop.errors.SHOP_REASONS)."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest
from mypy import api as mypy_api

from ichido.errors import REASONS, IchidoError, ReasonCode
from ichido.receiver import HTTP_STATUS
from ichido.shop.errors import SHOP_REASONS, ShopError

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ichido"
# Applications on ichido with vocabularies of their own: the emulator answers Stripe's codes,
# the shop its own (they never reach the receiver).
OWN_VOCABULARY = ("emulator", "domain", "shop")
SHOP = SRC / "shop"


def core_modules() -> list[Path]:
    return [path for path in sorted(SRC.rglob("*.py"))
            if path.relative_to(SRC).parts[0] not in OWN_VOCABULARY]


def shop_modules() -> list[Path]:
    return sorted(SHOP.rglob("*.py"))


def codes_in(path: Path) -> set[str]:
    """``code="…"`` in any call, ``code = "…"`` in a class body, and the literal codes that
    HTTP answers name (``"code": "…"``, ``error_json("…", …)``, ``labels("…")`` of
    rejections)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "code" and value is not None:
                    found |= _literals(value)
        elif isinstance(node, ast.keyword) and node.arg == "code":
            found |= _literals(node.value)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if (isinstance(item, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "code" for t in item.targets)):
                    found |= _literals(item.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "labels" and "rejected" in ast.unparse(node.func)):
            for arg in node.args:
                found |= _literals(arg)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("error_json", "_refusal")):
            found |= _literals(node.args[0 if node.func.id == "error_json" else 1])
    return found


def _literals(node: ast.AST) -> set[str]:
    """The string constants an expression can evaluate to (``a if x else b`` gives both)."""
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_every_code_raised_in_the_core_is_in_the_catalogue() -> None:
    missing = {f"{path.relative_to(SRC)}: {code}" for path in core_modules()
               for code in codes_in(path) if code not in REASONS}
    assert not missing, f"codes not listed in ichido.errors.REASONS: {sorted(missing)}"


def test_every_code_the_shop_raises_or_answers_is_in_its_catalogue() -> None:
    """The shop's own codes (its errors), and ichido's where it raises ichido's errors."""
    known = set(SHOP_REASONS) | set(REASONS)
    missing = {f"{path.relative_to(SRC)}: {code}" for path in shop_modules()
               for code in codes_in(path) if code not in known}
    assert not missing, f"codes in no catalogue: {sorted(missing)}"
    everything = set().union(*(codes_in(path) for path in shop_modules()))
    assert {"unknown_order", "unknown_subscription", "out_of_stock", "unknown_product"} <= everything


def test_every_error_answer_is_built_in_one_place() -> None:
    """``{"error": {...}}`` is written only by ichido.errors.error_json, whose code is typed, so
    no hand-written answer can carry a code the type checker has not seen."""
    written = []
    for path in [*core_modules(), *shop_modules()]:
        if path == SRC / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Dict) and any(
                    isinstance(key, ast.Constant) and key.value == "error"
                    and isinstance(value, ast.Dict) for key, value in zip(node.keys, node.values)):
                written.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not written, f"error answers written by hand: {written}"


def test_the_walk_finds_codes_where_they_are_raised() -> None:
    """The walk itself must see the known raise sites, or the test above proves nothing."""
    everything = set().union(*(codes_in(path) for path in core_modules()))
    for code in ("bad_signature", "stale_timestamp", "invalid_utf8", "value_out_of_range",
                 "headers_too_large", "shutting_down", "bad_app", "window_too_short",
                 "method_not_allowed"):
        assert code in everything, code


def test_the_readme_table_matches_the_catalogue() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("### Reason codes", 1)[1].split("\n#", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z0-9_]+)` \| (.+?) \|$", section, re.MULTILINE))
    assert rows == REASONS


def test_no_core_error_carries_an_http_status() -> None:
    """The status belongs to the HTTP layer (ichido.receiver.HTTP_STATUS), not to the error."""
    import ichido.errors as errors

    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.IchidoError):
            assert not hasattr(value, "http_status"), value


def test_the_readme_statuses_are_the_receivers() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("### Reason codes", 1)[1].split("| code |", 1)[0]
    named = {code: int(status) for status, codes in re.findall(r"(\d{3}) ((?:`[a-z_]+`/?)+)",
                                                                 section)
             for code in re.findall(r"`([a-z_]+)`", codes)}
    assert named == HTTP_STATUS


def test_the_type_and_the_catalogue_name_the_same_codes() -> None:
    assert set(typing.get_args(ReasonCode)) == set(REASONS)


# Each line that names ``no_such_code`` must fail type checking; the others must pass, so the
# check fails for the wrong code, not for the program's shape.
PROGRAM = """\
from ichido.errors import IchidoError, error_json
from ichido.receiver import HTTP_STATUS
IchidoError("x", code="not_found")
error_json("too_large", "x")
IchidoError("x", code="no_such_code")
error_json("no_such_code", "x")
HTTP_STATUS["no_such_code"] = 400
class Mine(IchidoError):
    code = "no_such_code"
"""


def test_a_code_outside_the_catalogue_fails_type_checking(tmp_path: Path) -> None:
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    stdout, stderr, _ = mypy_api.run(["--config-file", str(config), "--cache-dir",
                                      str(tmp_path / "cache"), "--no-error-summary",
                                      "--follow-imports", "silent", "-c", PROGRAM])
    failing = {int(line) for line in re.findall(r"^<string>:(\d+): error", stdout, re.MULTILINE)}
    wrong = {number for number, line in enumerate(PROGRAM.splitlines(), 1)
             if "no_such_code" in line}
    assert failing == wrong, stdout + stderr


def test_an_answer_with_a_code_outside_its_catalogue_is_refused() -> None:
    """The runtime guard for code the type checker does not read (the shop)."""
    with pytest.raises(ValueError, match="no_such_code"):
        IchidoError("x", code="no_such_code").to_json()  # type: ignore[arg-type]  # the point
    with pytest.raises(ValueError, match="bad_signature"):
        ShopError("x", code="bad_signature").to_json()  # type: ignore[arg-type]  # ichido's
    assert ShopError("x", code="out_of_stock").to_json() == {
        "error": {"code": "out_of_stock", "message": "x"}}
