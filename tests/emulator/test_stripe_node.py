"""stripe-node (the official Node SDK, pinned in tests/stripe_tools) drives the local Stripe
through the same flows the CLI's triggers cause: customers deleted, coupons and plans, manual
capture in usd, refunds updated, test cards, payment methods, setup intents, invoices from
invoice items, test clocks, and list filters applied or refused (tests/stripe_tools/flows.mjs).
"""

from __future__ import annotations

import json
import subprocess

from ichido.emulator import Emulator, EmulatorServer
from tests.emulator.stripe_tools import KEY, TOOLS, require

SDK = TOOLS / "node_modules" / "stripe" / "package.json"


def test_stripe_node_flows() -> None:
    require(SDK)
    with EmulatorServer(Emulator(api_key=KEY)) as server:
        done = subprocess.run(["node", str(TOOLS / "flows.mjs"), server.url, KEY],
                              capture_output=True, text=True, timeout=120, cwd=TOOLS)
    assert done.returncode == 0, done.stderr
    checks = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(checks) == 10
    assert {name: ok for name, ok in checks.items() if ok is not True} == {}
