"""Dependencies point one way (cli → app → receiver and worker → roles → engines): no import
cycles, and the core never imports its applications (the shop, the emulator).

The graph is read from the source with ``ast``, so an import inside a function or under
``if TYPE_CHECKING:`` counts as much as one at the top: a cycle hidden in a function is still
a cycle, it only fails later.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
APPLICATIONS = ("ichido.shop", "ichido.emulator")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((SRC / "ichido").rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The ichido modules that ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from pkg import module` imports the module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {target for target in found if target in known and target != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(name, path, known) for name, path in found.items()}


def is_application(name: str) -> bool:
    return any(name == app or name.startswith(app + ".") for app in APPLICATIONS)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions_and_relative_ones() -> None:
    """The walker itself: a test of the rules that saw nothing would pass for nothing."""
    edges = graph()
    assert "ichido.shop.demo" in edges["ichido.shop.cli"]  # imported inside `demo()`
    assert "ichido" in edges["ichido.shop.app"]  # the public API: `from ichido import App`
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_takes_part_in_an_import_cycle() -> None:
    found = cycles(graph())
    assert not found, "import cycles (lazy imports included): " + "; ".join(
        " <-> ".join(cycle) for cycle in found)


def test_the_core_never_imports_the_shop_or_the_emulator() -> None:
    edges = graph()
    offences = sorted(f"{source} imports {target}" for source, targets in edges.items()
                      if not is_application(source)
                      for target in targets if is_application(target))
    assert not offences, offences


def test_the_emulator_takes_the_fee_rule_as_data_and_never_imports_the_shop() -> None:
    edges = graph()
    offences = sorted(f"{source} imports {target}" for source, targets in edges.items()
                      if source.startswith("ichido.emulator")
                      for target in targets if target.startswith("ichido.shop"))
    assert not offences, offences


def test_help_lists_the_applications_commands_and_a_core_command_loads_neither() -> None:
    """``ichido --help`` names them; ``ichido stats --help`` runs without importing them."""
    script = ("import sys\n"
              "from typer.testing import CliRunner\n"
              "from ichido.cli import cli\n"
              "runner = CliRunner()\n"
              "assert runner.invoke(cli, ['stats', '--help']).exit_code == 0\n"
              "print(sorted(m for m in sys.modules if m.startswith(%r)))\n"
              "print(runner.invoke(cli, ['--help'], env={'COLUMNS': '120'}).output)\n"
              % APPLICATIONS[0].rpartition(".")[0])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded, _, help_text = done.stdout.partition("\n")
    assert not [m for m in ast.literal_eval(loaded) if is_application(m)], loaded
    for command in ("orders", "fees", "demo", "emulator", "serve", "events"):
        assert f" {command} " in help_text, help_text
