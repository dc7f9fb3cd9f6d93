"""docs/invariants.md names, under each invariant, the tests that prove it: each one must exist
in the file cited, so that the page cannot go on citing a test that was renamed, moved or
removed."""

from __future__ import annotations

import re

from tests.support import ROOT


def test_every_test_the_invariants_page_cites_exists() -> None:
    page = (ROOT / "docs" / "invariants.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", page)
    assert len(cited) >= 8
    missing = [f"{path}::{name}" for path, name in cited
               if not (ROOT / path).is_file() or not re.search(
                   rf"^(?:async )?def {name}\(", (ROOT / path).read_text(), re.M)]
    assert not missing, f"docs/invariants.md cites tests that do not exist: {missing}"
    for number in range(1, 9):
        assert f"## I{number} " in page
