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
    # Issue 24: the fee guard's answer for the ¥300 ticket, then PayPay; a transfer in two parts.
    assert "the fee guard suggests paypay" in output
    assert "authorises the payment in PayPay" in output
    assert "the shop mails that ¥500 is still owed" in output
    for order in ("PayPay", "bank"):
        assert order in output.split("each order's final state")[1]
    assert "whsec_" not in output  # the signing secret never shows
    # Issue 23: a thin destination beside the snapshot endpoint; each pair of twins applies once
    import re
    thin = re.search(r"thin events received beside their snapshots \(migration\)\D*(\d+)", output)
    twins = re.search(r"twins collapsed: one shape applied, the other not\D*(\d+)", output)
    assert thin and twins and int(thin[1]) > 0 and int(twins[1]) == int(thin[1])
