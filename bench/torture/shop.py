"""The shop torture: N orders through the local Stripe and the shop on PostgreSQL + Redis,
with everything that goes wrong in production made to go wrong on purpose, then checked.

    python -m bench shop-torture [--orders N] [--json] ...

What runs: the emulator (a process of its own) sends every event to every receiver (so each
event reaches two receivers at the same instant: concurrent duplicates, I8 in
docs/invariants.md), with 30% extra duplicate copies and each object's events reordered;
``ichido serve`` receivers (the shop's API and the webhook endpoint) and ``ichido worker``
processes (handlers and the outbox), on a PostgreSQL and a Redis of the run's own. Buyers
place card and konbini orders, pay or let vouchers expire, ask for refunds (shop_buyers.py).

What goes wrong (chaos.py): ``kill -9`` of random receivers and workers, a Redis
``FLUSHALL``, a PostgreSQL crash and restart (``--no-kills``, ``--no-redis-flush``,
``--no-pg-restart``). What is checked: shop_judge.py. The last line with ``--json`` is one
JSON object of the figures. Exit 0 only when every count of a problem is zero.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.torture import harness
from bench.torture.chaos import Chaos
from bench.torture.services import Fleet, log
from bench.torture.shop_buyers import Buyers
from bench.torture.shop_emulator import EmulatorProcess, serve_emulator
from bench.torture.shop_judge import Judge
from bench.torture.shop_plan import API_KEY, SHOP_APP, make_plans, write_catalog
from ichido.testing import free_port

PROBLEMS = ("lost", "double_effects", "missing_effects", "mismatched_states",
            "unexpected_outcomes", "dead")


class ShopTorture:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.plans = make_plans(args.orders, self.rng)
        self.tmp = Path(tempfile.mkdtemp(prefix="ichido-torture-"))
        self.secret = f"whsec_torture_{uuid.uuid4().hex}"
        self.aborting = threading.Event()
        self.placing = threading.Event()
        (self.tmp / "mail").mkdir()
        (self.tmp / "logs").mkdir()
        self.emulator_port = free_port()
        self.fleet = Fleet(self.tmp / "logs", app=SHOP_APP, receivers=args.receivers,
                           workers=args.workers, worker_threads=args.worker_threads, env={
            **harness.process_env(args, self.secret), "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": f"http://127.0.0.1:{self.emulator_port}",
            "ICHIDO_CATALOG": str(write_catalog(self.tmp / "catalog.toml")),
            "ICHIDO_MAIL_DIR": str(self.tmp / "mail"), "ICHIDO_DB_POOL_SIZE": "4"})
        self.chaos = Chaos(self.fleet, harness.faults(args), self.rng, total=len(self.plans))
        self.emulator: EmulatorProcess | None = None
        self.buyers: Buyers | None = None
        self.monitor: threading.Thread | None = None

    def setup(self) -> None:
        self.fleet.start_servers()
        self.emulator = EmulatorProcess(
            self.args, self.emulator_port,
            [f"{receiver.url}/webhooks/stripe" for receiver in self.fleet.receivers],
            self.secret, self.tmp / "logs")
        self.buyers = Buyers(self.fleet, self.emulator, self.chaos, run_tag=self.tmp.name,
                             rng=self.rng, story_timeout=self.args.story_timeout,
                             max_in_flight=self.args.max_in_flight, aborting=self.aborting)
        self.chaos.progress = lambda: f"orders done {self.buyers.done if self.buyers else 0}"
        self.monitor = threading.Thread(target=self.buyers.watch_emulator, daemon=True)
        self.monitor.start()
        self.fleet.start_services()

    def close(self) -> None:
        self.aborting.set()  # buyers give up; the emulator watch ends before the emulator does
        self.placing.clear()  # the chaos thread stops
        with self.chaos.held():
            if self.monitor is not None:
                self.monitor.join(10)
            if self.emulator is not None:
                with contextlib.suppress(Exception):
                    self.emulator.stop()
            self.fleet.close(keep=self.args.keep)
            if not self.args.keep:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.setup()
        assert self.buyers is not None and self.emulator is not None
        log(f"{len(self.plans)} orders, {len(self.fleet.receivers)} receivers, "
            f"{len(self.fleet.workers)} workers × {self.args.worker_threads} threads")
        self.placing.set()
        chaos = threading.Thread(target=self.chaos.run, args=(self.placing,), daemon=True)
        chaos.start()
        threading.Thread(target=self.report_progress, daemon=True).start()
        concurrency = self.args.concurrency or max(2, min(32, len(self.plans) // 10))
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="buyer")
        try:
            list(pool.map(self.buyers.story, self.plans))
        except BaseException:  # interrupted: let the buyers give up, then tear down
            self.aborting.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.placing.clear()
        chaos.join(300)
        self.fleet.start_services()  # all up for the end
        log("every buyer is done; letting every delivery, retry and outbox message land")
        judge = Judge(self.emulator, self.fleet.postgres.url, self.tmp, self.plans, self.aborting)
        settled = judge.settle(self.args.settle_timeout)
        seconds = time.monotonic() - started
        self.fleet.stop_services()  # freeze, then look
        result = judge.judge(seconds, settled)
        result.update(receivers=len(self.fleet.receivers),
                      client_retries=self.buyers.client_retries)
        self.chaos.add_figures(result, error_counts_as="unexpected_outcomes")
        return result

    def report_progress(self) -> None:
        while self.placing.is_set():
            time.sleep(10)
            if self.placing.is_set() and self.buyers is not None:
                log(f"orders done {self.buyers.done}/{len(self.plans)}, events "
                    f"{self.buyers.emulator_state['events']}, kills "
                    f"{sum(self.chaos.figures.kills.values())}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench shop-torture", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=0,
                        help="buyers at once (default: orders/10, 2 to 32)")
    parser.add_argument("--duplicate-rate", type=float, default=0.3)
    parser.add_argument("--reorder-window", type=float, default=0.3)
    parser.add_argument("--sender-concurrency", type=int, default=48,
                        help="webhook requests the emulator has on the wire at once")
    parser.add_argument("--max-in-flight", type=int, default=400,
                        help="buyers pause while the emulator has more deliveries under way")
    parser.add_argument("--story-timeout", type=float, default=240.0,
                        help="seconds one buyer's step may take, retries included")
    harness.add_run_flags(parser, kill_every=8.0, settle_timeout=300.0,
                          receivers_help="receiver processes; every event goes to each at once")
    return harness.parse_run_flags(parser, argv, "orders")


def main(argv: list[str]) -> int:
    if "--emulator-child" in argv:
        return serve_emulator(argv)
    args = parse(argv)
    torture = ShopTorture(args)
    result = harness.run_to_the_end(torture.run, torture.close, interrupt=torture.aborting.set)
    if result is None:
        return 130
    ok = not any(result[k] for k in PROBLEMS)
    harness.report(
        result, problems=PROBLEMS, ok=ok, as_json=args.json,
        title=f"ichido shop torture (seed {args.seed}): {result['orders']} orders, "
              f"{result['events']} events, {result['deliveries']} deliveries to "
              f"{result['receivers']} receivers in {result['seconds']} s "
              f"({result['events_per_second']} events/s)",
        retried=f"{result['delivery_failures']} failed deliveries retried",
        ok_line="nothing lost, nothing applied twice, states as an in-order replay")
    return 0 if ok else 1
