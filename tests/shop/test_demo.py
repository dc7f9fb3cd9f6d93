"""`make run` runs `ichido demo`: it must pass its own exactly-once check in the test suite too."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def test_demo_plays_the_story_and_every_effect_happens_exactly_once() -> None:
    done = subprocess.run([sys.executable, "-m", "ichido", "demo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "every effect happened exactly once" in output
    for state in ("refunded", "expired", "paid"):
        assert state in output
    assert "whsec_" not in output  # the signing secret never shows
