"""The type checker's rules that live in the source: mypy guards the core (``make check``, run
by CI before the tests), its relaxations are named, and no ``# type: ignore`` goes unexplained."""

from __future__ import annotations

import re
import tomllib

from tests.support import ROOT

SOURCE = ROOT / "src" / "ichido"
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
EXPLAINED = re.compile(r"^\[[a-z-]+(, ?[a-z-]+)*\]  # \S")


def test_every_type_ignore_names_its_code_and_says_why() -> None:
    unexplained = []
    for path in sorted(SOURCE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = IGNORE.search(line)
            if found and not EXPLAINED.match(found["rest"]):
                unexplained.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not unexplained, "write `# type: ignore[code]  # why`:\n" + "\n".join(unexplained)


def test_mypy_checks_the_core_and_relaxes_only_the_shop_and_the_emulator() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mypy = config["tool"]["mypy"]
    assert mypy["files"] == ["src/ichido"]
    assert "ignore-without-code" in mypy["enable_error_code"] and mypy["warn_unused_ignores"]
    relaxed = [module for override in mypy["overrides"] if override.get("ignore_errors")
               for module in override["module"]]
    assert relaxed == ["ichido.shop.*", "ichido.emulator.*"]
    assert "mypy" in " ".join(config["project"]["optional-dependencies"]["dev"])
    assert "make check" in (ROOT / ".ci" / "run").read_text()


def test_the_package_says_it_is_typed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert (SOURCE / "py.typed").is_file()
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["ichido"]
