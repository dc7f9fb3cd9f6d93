"""The reliability runs (``python -m bench shop-torture``, issue 5 item 6) in the suite with a
small N, and what earlier runs found.

Each run restarts and flushes a PostgreSQL and a Redis of its own (``ichido.testing``), so it
disturbs nobody who shares the machine's servers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson

from ichido.config import Settings
from tests.support import ROOT

ORDERS = 30


def test_small_torture_run_loses_nothing_applies_everything_once_and_matches_a_replay() -> None:
    command = [sys.executable, "-m", "bench", "shop-torture", "--orders", str(ORDERS), "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=170)
    report = done.stdout + done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, report
    assert figures["orders"] == ORDERS
    assert figures["events"] >= 3 * ORDERS  # every order makes three events or more
    assert figures["deliveries"] >= 2 * figures["events"]  # each event to both receivers
    assert (figures["lost"], figures["double_effects"], figures["mismatched_states"]) == (0, 0, 0)
    assert (figures["missing_effects"], figures["unexpected_outcomes"],
            figures["dead"]) == (0, 0, 0)
    assert figures["settled"] is True
    # Every fault happened, mid-run.
    assert figures["kills"].get("receiver", 0) >= 2 and figures["kills"].get("worker", 0) >= 2
    assert (figures["redis_flushes"], figures["pg_restarts"]) == (1, 1)
    assert figures["delivery_failures"] > 0 and figures["gave_up"] == 0
    # Duplicates were caught by both tiers, and the counts add up.
    assert figures["duplicates_cache"] > 0 and figures["duplicates_durable"] > 0
    assert figures["unique"] == figures["events"]
    assert figures["received"] == (figures["unique"] + figures["duplicates_cache"]
                                   + figures["duplicates_durable"])


# -- found by the torture run (fixed upstream in 225e30c; kept as a regression test) ------------
# On PostgreSQL, SUM over BIGINT is NUMERIC: "refund the rest" (no amount) made the refund amount
# a Decimal that the outbox could not serialize, and the request failed with a 500.

def test_a_full_refund_asked_without_an_amount_is_accepted(database_url: str,
                                                          tmp_path: Path) -> None:
    from ichido.shop.app import create_shop
    from ichido.shop.settings import ShopSettings

    settings = Settings(database_url=database_url)
    shop = create_shop(settings, ShopSettings(stripe_api_key="sk_test_refund_rest",
                                              mail_dir=str(tmp_path / "mail")), workers=0)
    shop.app.migrate()
    inbox = shop.app.inbox
    try:
        with inbox.transaction() as tx:
            tx.execute("INSERT INTO shop_orders (id, product_id, product_name, kind, quantity,"
                       " amount, payment_method, email, status, payment_intent, created_at,"
                       " updated_at) VALUES ('ord_rest', 'live-2026-12', 'Online live',"
                       " 'video_ticket', 1, 1500, 'card', 'fan@example.com', 'paid', 'pi_rest',"
                       " 0, 0)")
        first = shop.request_refund("ord_rest", 500, "part")
        rest = shop.request_refund("ord_rest", None, "rest")  # "refund the rest"
        assert (first["amount"], rest["amount"]) == (500, 1000)
        with inbox.reading() as tx:
            payloads = [orjson.loads(row[0]) for row in tx.execute(
                "SELECT payload FROM ichido_outbox WHERE kind = 'stripe_refund'"
                " ORDER BY created_at").fetchall()]
        assert [p["amount"] for p in payloads] == [500, 1000]
    finally:
        shop.app.inbox.close()


def test_small_pipeline_torture_loses_nothing_and_applies_every_event_once() -> None:
    """``python -m bench torture`` (issue 16 item 11) with a few thousand events: every fault
    happens mid-run, and the judge finds nothing lost, doubled or missing."""
    events = 2000
    command = [sys.executable, "-m", "bench", "torture", "--events", str(events), "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=170)
    report = done.stdout + done.stderr[-4000:]
    assert done.returncode == 0, report
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["lost"], figures["double"], figures["missing_effects"]) == (0, 0, 0), report
    assert (figures["dead"], figures["refused"], figures["gave_up"]) == (0, 0, 0), report
    assert figures["settled"] is True and figures["unanswered"] == 0
    assert figures["unique"] == figures["processed"] == events
    assert figures["concurrent_copies"] > 0 and figures["late_copies"] > 0
    assert figures["kills"].get("receiver", 0) >= 2 and figures["kills"].get("worker", 0) >= 2
    assert (figures["redis_flushes"], figures["pg_restarts"]) == (1, 1)
    assert figures["retried_deliveries"] > 0  # the faults were felt by the sender
    assert figures["duplicates_cache"] > 0 and figures["duplicates_durable"] > 0
    assert figures["received"] == (figures["unique"] + figures["duplicates_cache"]
                                   + figures["duplicates_durable"])
