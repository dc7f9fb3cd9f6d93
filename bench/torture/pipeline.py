"""The pipeline torture: up to a million events through two ``ichido serve`` receivers and two
``ichido worker`` processes on PostgreSQL + Redis (or, ``--store sqlite``, on one SQLite file,
the embedded default), with faults all along, then judged.

    python -m bench torture --events 1000000 [--store sqlite] [--json] [--seed N] ...

No shop and no local Stripe: the sender (pipeline_sender.py) is Stripe, the app is
bench/apps.py (one effects row per application, no unique constraint). 30% of deliveries are
duplicates, a share of them concurrent: one event to both receivers at the same instant (I8 in
docs/invariants.md). Faults (chaos.py): ``kill -9`` of random receivers and workers, a Redis
``FLUSHALL``, a PostgreSQL crash and restart, on servers of the run's own (services.py). On
SQLite: ``kill -9`` of workers while the intake holds rows to settle, and an online backup
(``ichido backup``) taken mid-burst, then the machine dies and the backup is restored
(``ichido restore``); what Stripe had been answered after the backup began is sent again, as
``ichido reconcile`` would fetch it from Stripe's Events API.
Judged by pipeline_judge.py: 0 lost, 0 double, 0 missing effects, nothing dead; exit 0 only
then.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.torture import harness
from bench.torture.chaos import Chaos
from bench.torture.pipeline_judge import Judge
from bench.torture.pipeline_plan import Plan
from bench.torture.pipeline_sender import Sender
from bench.torture.services import Fleet, log
from bench.torture.sqlite_store import SqliteStore

APP = "bench.apps:app"
PROBLEMS = ("lost", "double", "missing_effects", "dead", "refused", "gave_up")


class PipelineTorture:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="ichido-torture-"))
        (self.tmp / "logs").mkdir()
        self.plan = Plan(args.events, duplicate_rate=args.duplicate_rate,
                         concurrent_share=args.concurrent_share, seed=args.seed,
                         run=uuid.uuid4().hex[:8])
        secret = f"whsec_torture_{uuid.uuid4().hex}"
        sqlite = self.tmp / "store" / "ichido.db" if args.store == "sqlite" else None
        self.fleet = Fleet(self.tmp / "logs", app=APP, receivers=args.receivers,
                           workers=args.workers, worker_threads=args.worker_threads,
                           env=harness.process_env(args, secret), sqlite=sqlite,
                           postgres_settings={"shared_buffers": "256MB", "max_wal_size": "2GB",
                               "checkpoint_timeout": "60s"})  # a short crash recovery
        self.chaos = Chaos(self.fleet, harness.faults(args), random.Random(args.seed),
                           total=int(args.events * (1 + self.plan.late_rate)))  # the sender's units
        self.sender = Sender(self.plan, [r.port for r in self.fleet.receivers], secret,
                             self.chaos, lanes=args.lanes)
        self.chaos.progress = self.sender.progress
        if sqlite is not None:
            sqlite.parent.mkdir()
            self.store = SqliteStore(self.fleet, self.sender, self.tmp / "backup")
            self.chaos.backup, self.chaos.restore = self.store.backup, self.store.restore
            self.chaos.unsettled = self.store.unsettled
        self.running = threading.Event()

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.fleet.start_servers()
        self.fleet.start_services()
        log(f"{self.plan.events:,} events, {len(self.fleet.receivers)} receivers, "
            f"{len(self.fleet.workers)} workers × {self.args.worker_threads} threads, "
            f"seed {self.args.seed}")
        self.running.set()
        chaos = threading.Thread(target=self.chaos.run, args=(self.running,), daemon=True)
        chaos.start()
        threading.Thread(target=self.report_progress, daemon=True).start()
        try:
            asyncio.run(self.sender.run())
        finally:
            self.running.clear()
        chaos.join(300)
        self.fleet.start_services()  # all up for the end
        if self.args.store == "sqlite" and self.store.resend:
            log(f"sending again the {len(self.store.resend):,} events answered after the"
                " backup began (what ichido reconcile fetches from Stripe)")
            asyncio.run(self.sender.resend(self.store.resend))
        log(f"every event sent ({self.sender.progress()}); letting the workers finish")
        judge = Judge(self.fleet.database_url, self.plan)
        settled = judge.settle(self.args.settle_timeout)
        seconds = time.monotonic() - started
        self.fleet.stop_services()  # freeze, then look
        result = judge.judge(self.sender, seconds, settled)
        result.update(receivers=len(self.fleet.receivers), workers=len(self.fleet.workers),
                      seed=self.args.seed)
        self.chaos.add_figures(result, error_counts_as="refused")
        result["store"] = self.args.store
        if self.args.store == "sqlite":
            result["resent_after_restore"] = len(self.store.resend)
        return result

    def report_progress(self) -> None:
        while self.running.is_set():
            time.sleep(10)
            if self.running.is_set():
                log(f"{self.sender.progress()}, kills {sum(self.chaos.figures.kills.values())}")

    def close(self) -> None:
        self.running.clear()
        with self.chaos.held():
            self.fleet.close(keep=self.args.keep)
            if not self.args.keep:
                shutil.rmtree(self.tmp, ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench torture", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="unique events")
    parser.add_argument("--lanes", type=int, default=48, help="deliveries under way at once")
    parser.add_argument("--duplicate-rate", type=float, default=0.3,
                        help="share of deliveries that are copies of an event sent before")
    parser.add_argument("--concurrent-share", type=float, default=0.35,
                        help="share of the copies sent to both receivers at the same instant")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres",
                        help="a private PostgreSQL + Redis, or one SQLite file (the default's)")
    parser.add_argument("--no-backup-restore", action="store_true",
                        help="SQLite: no online backup and restore in the middle")
    harness.add_run_flags(parser, kill_every=15.0, settle_timeout=1800.0)
    args = harness.parse_run_flags(parser, argv, "events")
    if args.store == "sqlite":  # no servers to flush or restart; its own faults instead
        args.no_redis_flush = args.no_pg_restart = True
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    torture = PipelineTorture(args)
    result = harness.run_to_the_end(torture.run, torture.close)
    if result is None:
        return 130
    ok = result["settled"] and not any(result[k] for k in PROBLEMS)
    harness.report(
        result, problems=PROBLEMS, ok=ok, as_json=args.json,
        title=f"ichido torture (seed {result['seed']}): {result['events']:,} events, "
              f"{result['deliveries']:,} deliveries ({result['duplicate_copies_sent']:,} "
              f"duplicate copies, {result['concurrent_copies']:,} of them concurrent) to "
              f"{result['receivers']} receivers, {result['workers']} workers, in "
              f"{result['seconds']} s ({result['events_per_second']} events/s)",
        retried=f"{result['retried_deliveries']:,} deliveries retried",
        ok_line="nothing lost, nothing applied twice, no effect missing")
    return 0 if ok else 1
