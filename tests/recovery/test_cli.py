"""``ichido reconcile`` and ``ichido replay`` as an operator types them: a time they cannot mean
is a one-line error before anything is read or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli


@pytest.mark.parametrize("since", [
    "9" * 30,                     # an integer no 64-bit column holds
    "9" * 400 + "d",              # an age that overflows a float
    "99999999999999d",            # an age that reaches before 1970
    "0001-01-01",                 # a date before 1970
    "9999-12-31T23:59:59-23:59",  # after the last second of 9999
    "99999-01-01",                # year 99999
    "-5",
])
def test_reconcile_since_out_of_range_is_a_one_line_error(tmp_path: Path, since: str) -> None:
    done = run_cli("reconcile", f"--since={since}",
                   database_url=f"sqlite:///{tmp_path / 'store.db'}",
                   env={"STRIPE_API_KEY": "sk_test_ichido_cli",
                        "STRIPE_API_BASE": "http://127.0.0.1:9"})  # never reached
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error [config_error] not a time"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "store.db").exists()  # refused before the store was opened


def test_replay_since_out_of_range_is_a_one_line_error(tmp_path: Path) -> None:
    done = run_cli("replay", "--status", "dead", f"--since={'9' * 30}",
                   database_url=f"sqlite:///{tmp_path / 'store.db'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
