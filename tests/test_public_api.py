"""The example shop (with its fee guard) and the local Stripe are applications on ichido's public
API: every name they import from ichido is in a public module's ``__all__``, and the public
modules and their names are exactly docs/api.md's table.

Imports are read from the source with ``ast``, inside functions too, as tests/test_imports.py
reads them: an import a command makes lazily is as much a dependency as one at the top."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from tests.support import ROOT

SRC = ROOT / "src"
APPLICATIONS = ("ichido.shop", "ichido.emulator")
ROW = re.compile(r"^\| `(ichido[\w.]*)` \| (.+) \|$")


def public_api() -> dict[str, set[str]]:
    """docs/api.md's table: each public module and the names it exports."""
    table: dict[str, set[str]] = {}
    for line in (ROOT / "docs" / "api.md").read_text("utf-8").splitlines():
        found = ROW.match(line.strip())
        if found:
            table[found.group(1)] = set(re.findall(r"`(\w+)`", found.group(2)))
    return table


def module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) of every ``from ichido… import name`` and ``import ichido…``."""
    name = module_of(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imported(ast.parse(path.read_text("utf-8"), str(path)), package)


def imported(tree: ast.AST, package: str) -> list[tuple[int, str, str | None]]:
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names
                      if inside(alias.name, "ichido")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if inside(base, "ichido"):
                found += [(node.lineno, base, alias.name) for alias in node.names]
    return sorted(found)


def judged(module: str, name: str | None, public: dict[str, set[str]]) -> str | None:
    """Why an import is not of the public API, or None when it is."""
    if name is None:  # import ichido.x
        return None if module in public else f"import {module} (not a public module)"
    if f"{module}.{name}" in public:  # from ichido import signature: a public module
        return None
    if module not in public:
        return f"from {module} import {name} (not a public module)"
    return None if name in public[module] else f"from {module} import {name} (not in __all__)"


def offences(application: str, public: dict[str, set[str]]) -> list[str]:
    """What ``application`` imports of ichido that is neither its own nor public."""
    found = []
    for path in sorted((SRC / application.replace(".", "/")).rglob("*.py")):
        for line, module, name in imports(path):
            reason = None if inside(module, application) else judged(module, name, public)
            if reason:
                found.append(f"{path.relative_to(ROOT)}:{line}: {reason}")
    return found


def test_docs_api_lists_each_public_modules_all_exactly() -> None:
    public = public_api()
    assert {"ichido", "ichido.outbox", "ichido.dashboard.panels", "ichido.testing"} <= set(public)
    for module, names in public.items():
        loaded = importlib.import_module(module)
        assert set(loaded.__all__) == names, f"{module}.__all__ and docs/api.md differ"
        missing = [name for name in loaded.__all__ if not hasattr(loaded, name)]
        assert not missing, f"{module} exports names it lacks: {missing}"


def test_the_shop_and_the_fee_guard_import_only_the_public_api() -> None:
    found = offences("ichido.shop", public_api())
    assert not found, "the shop reaches past the public API:\n" + "\n".join(found)


def test_the_local_stripe_imports_only_the_public_api() -> None:
    found = offences("ichido.emulator", public_api())
    assert not found, "the emulator reaches past the public API:\n" + "\n".join(found)


def test_the_walk_sees_private_names_lazy_imports_and_modules() -> None:
    """The checker itself: a rule that saw nothing would pass for nothing."""
    assert any(module == "ichido.shop.demo"  # imported inside the `demo` command
               for _, module, _ in imports(SRC / "ichido" / "shop" / "cli.py"))
    tree = ast.parse("from ichido import App, signature\nfrom ichido.worker import poll\n"
                     "def f():\n    from ichido.outbox import enqueue\n    import ichido.db\n"
                     "from . import orders\n")
    found = imported(tree, "ichido.shop")
    assert [(module, name) for _, module, name in found] == [
        ("ichido", "App"), ("ichido", "signature"), ("ichido.worker", "poll"),
        ("ichido.outbox", "enqueue"), ("ichido.db", None), ("ichido.shop", "orders")]
    public = {"ichido": {"App"}, "ichido.signature": {"sign"}, "ichido.outbox": {"OUTBOX"}}
    assert [judged(module, name, public) for _, module, name in found[:5]] == [
        None, None, "from ichido.worker import poll (not a public module)",
        "from ichido.outbox import enqueue (not in __all__)",
        "import ichido.db (not a public module)"]
