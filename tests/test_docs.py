"""docs/invariants.md names, under each invariant, the tests that prove it: each one must exist,
so that the page cannot go on citing a test that was renamed or removed."""

from __future__ import annotations

import re

from tests.support import ROOT


def test_every_test_the_invariants_page_cites_exists() -> None:
    page = (ROOT / "docs" / "invariants.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", page)
    assert len(cited) >= 8
    defined = {name for path in (ROOT / "tests").rglob("test_*.py")
               for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M)}
    missing = [f"{path}::{name}" for path, name in cited if name not in defined]
    assert not missing, f"docs/invariants.md cites tests that do not exist: {missing}"
    for number in range(1, 9):
        assert f"## I{number} " in page
