"""Stripe's own tools, installed by ``make test`` from ``tests/stripe_tools/package-lock.json``:
the official CLI (``@stripe/cli``, its binary in the platform package) and stripe-node.

The CLI runs offline against the local Stripe with its hidden ``--api-base`` flag. Without npm
the tests that need them skip with the reason, except under ``CI=true``, where they must run.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "stripe_tools"
CLI = TOOLS / "node_modules" / ".bin" / "stripe"
KEY = "sk_test_emulator_stripe_tools"  # the CLI wants at least 12 characters
#: The trigger families a Japanese streaming, e-commerce or live-commerce business uses.
FAMILIES = ("payment_intent.", "charge.", "customer.", "payment_method.", "setup_intent.",
            "product.", "price.", "plan.", "coupon.", "checkout.session.",
            "customer.subscription.", "invoice.", "subscription_schedule.",
            "test_helpers.test_clock.")
#: The CLI sends no ``Stripe-Version``: its requests are read in the account's default version.
#: Its fixtures (1.52) still send what later versions removed: ``payment_method_types`` on
#: PaymentIntents, SetupIntents and Checkout (removed in 2026-09-30.endive) and a schedule
#: phase's ``iterations`` (removed in 2025-09-30.clover). The newest account default that takes
#: them all is the last basil; an account on a later version gets Stripe's 400s for them.
CLI_ACCOUNT_VERSION = "2025-08-27.basil"


def require(path: Path) -> Path:
    """``path`` if installed; else skip (or fail under CI, where the tools must run)."""
    if path.exists() and shutil.which("node"):
        return path
    reason = (f"Stripe's tools are not installed ({path.relative_to(TOOLS.parents[1])}): run "
              "`make test` (needs node and npm), or `npm install --no-save --ignore-scripts "
              "--prefix tests/stripe_tools`")
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Outcome:
    trigger: str
    ok: bool
    output: str


@functools.cache
def cli_env() -> dict[str, str]:
    """The CLI writes its config under ``$HOME``: a home of its own, outside the repository."""
    return {**os.environ, "HOME": tempfile.mkdtemp(prefix="stripe-cli-home-"),
            "STRIPE_CLI_TELEMETRY_OPTOUT": "1"}


def trigger(name: str, api_base: str, cli: Path = CLI, timeout: float = 120) -> Outcome:
    """``stripe trigger NAME`` against ``api_base``; ok when the CLI says every step worked."""
    done = subprocess.run(
        [str(cli), "trigger", name, "--api-base", api_base, "--api-key", KEY,
         "--log-level", "error"], capture_output=True, text=True, timeout=timeout,
        env=cli_env())
    output = done.stdout + done.stderr
    return Outcome(name, done.returncode == 0 and "Trigger succeeded" in output, output)


def triggers(cli: Path = CLI) -> list[str]:
    """Every trigger of the families above, as the CLI lists them."""
    done = subprocess.run([str(cli), "trigger", "--help"], capture_output=True, text=True,
                          timeout=60, env=cli_env())
    names = [line.strip() for line in done.stdout.split("Supported events:")[1]
             .split("Usage:")[0].splitlines() if line.strip()]
    return [n for n in names if n.startswith(FAMILIES)]
