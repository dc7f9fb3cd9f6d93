"""Dependencies point one way (cli → app → receiver and worker → roles → engines): no import
cycles, no module importing a layer above its own (``LAYERS``), no storage module importing the
features that sit on it, and the core never imports its applications (the shop, the emulator).

The graph is read from the source with ``ast``, so an import inside a function or under
``if TYPE_CHECKING:`` counts as much as one at the top: a cycle hidden in a function is still
a cycle, it only fails later. What is loaded by name (``ichido.cli``'s sub-commands, the admin
commands' AWS store) is not an import, and is how an upper layer is reached on purpose.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
APPLICATIONS = ("ichido.shop", "ichido.emulator")
STORAGE = ("ichido.db", "ichido.inbox", "ichido.queue", "ichido.seen")
ABOVE_STORAGE = ("ichido.outbox", "ichido.recovery", "ichido.dashboard", "ichido.aws",
                 *APPLICATIONS)

# The core's layers, bottom to top: a module imports its own layer and those below it. A module
# belongs to the layer of its longest listed prefix ("ichido" itself, the public API, only by
# its exact name); every core module must have one, so a new module is placed on purpose.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("ichido.errors", "ichido.setting", "ichido.json_limits", "ichido.metrics", "ichido.console",
              "ichido.extras", "ichido.config", "ichido.event", "ichido.signature",
              "ichido.sources", "ichido.thin.notification", "ichido.thin.schema")),
    ("engines", ("ichido.db",)),
    ("roles", ("ichido.inbox", "ichido.queue", "ichido.seen")),
    ("processing", ("ichido.thin", "ichido.loops", "ichido.guard", "ichido.handlers", "ichido.worker",
                    "ichido.outbox", "ichido.group_commit", "ichido.receiver", "ichido.health",
                    "ichido.connections", "ichido.serving")),
    ("features", ("ichido.recovery", "ichido.dashboard")),
    ("composition", ("ichido.schema", "ichido.app")),
    ("commands", ("ichido", "ichido.__main__", "ichido.cli", "ichido.admin_cli", "ichido.backup",
                  "ichido.recovery.cli")),
    ("deployments and test tools", ("ichido.aws", "ichido.testing")),
]


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


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def is_application(name: str) -> bool:
    return within(name, APPLICATIONS)


def layer(name: str) -> int | None:
    """The index in ``LAYERS`` of ``name``'s longest listed prefix; None when it has none."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix or (prefix != "ichido" and name.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def back_arrows(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a module in a layer above the importer's own."""
    found = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            here, there = layer(source), layer(target)
            if here is not None and there is not None and there > here:
                found.append(f"{source} ({LAYERS[here][0]}) imports {target}"
                             f" ({LAYERS[there][0]})")
    return found


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


def test_the_layer_rule_sees_a_back_arrow() -> None:
    """The rule itself: storage importing the outbox, or the worker a feature, is caught."""
    assert back_arrows({"ichido.inbox.sql": {"ichido.outbox", "ichido.db.sql"}}) == [
        "ichido.inbox.sql (roles) imports ichido.outbox (processing)"]
    assert back_arrows({"ichido.handlers": {"ichido.recovery.guard"}})
    assert not back_arrows({"ichido.recovery.cli": {"ichido.schema"}})  # a command, above
    assert layer("ichido") != layer("ichido.worker")  # the package's own name only


def test_every_core_module_has_a_layer() -> None:
    unplaced = sorted(name for name in graph() if not is_application(name) and layer(name) is None)
    assert not unplaced, f"place these in LAYERS: {unplaced}"


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = back_arrows(graph())
    assert not found, "imports pointing up (lazy ones included): " + "; ".join(found)


def test_no_storage_module_imports_what_is_built_on_storage() -> None:
    """The roles and their engines know nothing of the outbox, recovery, the dashboard, AWS or
    the applications: the tables those own are composed with the core's in ``ichido.schema``."""
    offences = sorted(f"{source} imports {target}" for source, targets in graph().items()
                      if within(source, STORAGE)
                      for target in targets if within(target, ABOVE_STORAGE))
    assert not offences, offences


def test_background_loops_do_not_import_the_worker() -> None:
    """``poll`` and ``drain`` live in ``ichido.loops``: only what runs workers imports
    ``ichido.worker``."""
    importers = sorted(source for source, targets in graph().items() if "ichido.worker" in targets)
    assert importers == ["ichido.app", "ichido.aws.runner"], importers


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
