"""Every reason code ichido can answer or print is in one catalogue (ichido.errors.REASONS),
and the README's table of codes is that catalogue."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ichido.errors import REASONS

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ichido"
# Applications on ichido with vocabularies of their own: the emulator answers Stripe's codes,
# the shop its own (they never reach the receiver).
OWN_VOCABULARY = ("emulator", "domain", "shop")


def core_modules() -> list[Path]:
    return [path for path in sorted(SRC.rglob("*.py"))
            if path.relative_to(SRC).parts[0] not in OWN_VOCABULARY]


def codes_in(path: Path) -> set[str]:
    """``code="…"`` in any call, ``code = "…"`` in a class body, and the literal codes that
    HTTP answers written by hand name (``"code": "…"``, ``labels("…")`` of rejections)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.keyword) and node.arg == "code":
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
    return found


def _literals(node: ast.AST) -> set[str]:
    """The string constants an expression can evaluate to (``a if x else b`` gives both)."""
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_every_code_raised_in_the_core_is_in_the_catalogue() -> None:
    missing = {f"{path.relative_to(SRC)}: {code}" for path in core_modules()
               for code in codes_in(path) if code not in REASONS}
    assert not missing, f"codes not listed in ichido.errors.REASONS: {sorted(missing)}"


def test_the_walk_finds_codes_where_they_are_raised() -> None:
    """The walk itself must see the known raise sites, or the test above proves nothing."""
    everything = set().union(*(codes_in(path) for path in core_modules()))
    for code in ("bad_signature", "stale_timestamp", "invalid_utf8", "value_out_of_range",
                 "headers_too_large", "shutting_down", "bad_app", "window_too_short"):
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
