"""The pipeline torture: up to a million events through two ``ichido serve`` receivers and two
``ichido worker`` processes on PostgreSQL + Redis, with faults all along, then judged.

    python -m bench torture --events 1000000 [--json] [--seed N] ...

No shop and no local Stripe: the sender (pipeline_sender.py) is Stripe, the app is
bench/apps.py (one effects row per application, no unique constraint). 30% of deliveries are
duplicates, a share of them concurrent: one event to both receivers at the same instant (I8 in
docs/invariants.md). Faults (chaos.py): ``kill -9`` of random receivers and workers, a Redis
``FLUSHALL``, a PostgreSQL crash and restart, on servers of the run's own (services.py).
Judged by pipeline_judge.py: 0 lost, 0 double, 0 missing effects, nothing dead; exit 0 only
then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.torture.chaos import Chaos, Faults
from bench.torture.pipeline_judge import Judge
from bench.torture.pipeline_plan import Plan
from bench.torture.pipeline_sender import Sender
from bench.torture.services import Fleet, log

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
        self.fleet = Fleet(self.tmp / "logs", app=APP, receivers=args.receivers,
                           workers=args.workers, worker_threads=args.worker_threads, env={
            "STRIPE_WEBHOOK_SECRET": secret, "ICHIDO_LEASE": args.lease,
            "ICHIDO_RETRY_BASE": "0.2s", "ICHIDO_RETRY_CAP": "2s",
            "ICHIDO_POLL_INTERVAL": "0.05s"},
            postgres_settings={"shared_buffers": "256MB", "max_wal_size": "2GB",
                               "checkpoint_timeout": "60s"})  # a short crash recovery
        self.chaos = Chaos(self.fleet, Faults(
            kills=not args.no_kills, redis_flush=not args.no_redis_flush,
            pg_restart=not args.no_pg_restart, kill_every=args.kill_every,
            pg_down=args.pg_down), random.Random(args.seed),
            total=int(args.events * (1 + self.plan.late_rate)))  # the sender's units
        self.sender = Sender(self.plan, [r.port for r in self.fleet.receivers], secret,
                             self.chaos, lanes=args.lanes)
        self.chaos.progress = self.sender.progress
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
        log(f"every event sent ({self.sender.progress()}); letting the workers finish")
        judge = Judge(self.fleet.postgres.url, self.plan)
        settled = judge.settle(self.args.settle_timeout)
        seconds = time.monotonic() - started
        self.fleet.stop_services()  # freeze, then look
        result = judge.judge(self.sender, seconds, settled)
        figures = self.chaos.figures
        result.update(receivers=len(self.fleet.receivers), workers=len(self.fleet.workers),
                      kills=dict(figures.kills), redis_flushes=figures.redis_flushes,
                      pg_restarts=figures.pg_restarts, pg_down_seconds=figures.pg_down_seconds,
                      seed=self.args.seed)
        if self.chaos.error is not None:
            result["problems"].insert(0, f"chaos failed: {self.chaos.error!r}")
            result["refused"] += 1
        return result

    def report_progress(self) -> None:
        while self.running.is_set():
            time.sleep(10)
            if self.running.is_set():
                log(f"{self.sender.progress()}, kills {sum(self.chaos.figures.kills.values())}")

    def close(self) -> None:
        self.running.clear()
        locked = self.chaos.lock.acquire(timeout=120)  # a fault under way finishes first
        self.fleet.close(keep=self.args.keep)
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if locked:
            self.chaos.lock.release()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench torture", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="unique events")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--worker-threads", type=int, default=2)
    parser.add_argument("--lanes", type=int, default=48, help="deliveries under way at once")
    parser.add_argument("--duplicate-rate", type=float, default=0.3,
                        help="share of deliveries that are copies of an event sent before")
    parser.add_argument("--concurrent-share", type=float, default=0.35,
                        help="share of the copies sent to both receivers at the same instant")
    parser.add_argument("--lease", default="5s", help="ICHIDO_LEASE of the processes")
    parser.add_argument("--kill-every", type=float, default=15.0,
                        help="seconds between random kill -9s (after the planned ones)")
    parser.add_argument("--no-kills", action="store_true")
    parser.add_argument("--no-redis-flush", action="store_true")
    parser.add_argument("--no-pg-restart", action="store_true")
    parser.add_argument("--pg-down", type=float, default=2.0, help="seconds PostgreSQL is down")
    parser.add_argument("--settle-timeout", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the servers' files and logs")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if args.events < 1 or args.receivers < 1 or args.workers < 1:
        parser.error("--events, --receivers and --workers must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    torture = PipelineTorture(args)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        result = torture.run()
    except KeyboardInterrupt:
        log("interrupted: stopping every process this run started")
        return 130
    finally:
        torture.close()
        signal.signal(signal.SIGTERM, previous)
    ok = result["settled"] and not any(result[k] for k in PROBLEMS)
    print(f"ichido torture (seed {result['seed']}): {result['events']:,} events, "
          f"{result['deliveries']:,} deliveries ({result['duplicate_copies_sent']:,} duplicate "
          f"copies, {result['concurrent_copies']:,} of them concurrent) to "
          f"{result['receivers']} receivers, {result['workers']} workers, in "
          f"{result['seconds']} s ({result['events_per_second']} events/s)")
    print(f"  faults: kill -9 {result['kills']}, Redis FLUSHALL {result['redis_flushes']}, "
          f"PostgreSQL restarts {result['pg_restarts']} ({result['pg_down_seconds']} s down); "
          f"{result['retried_deliveries']:,} deliveries retried")
    print(f"  duplicates caught: {result['duplicates_cache']:,} by Redis, "
          f"{result['duplicates_durable']:,} by PostgreSQL")
    for name in PROBLEMS:
        print(f"  {name.replace('_', ' ')}: {result[name]}")
    for problem in result["problems"]:
        print(f"  ✗ {problem}")
    print("  ✓ nothing lost, nothing applied twice, no effect missing" if ok else "  ✗ FAILED")
    if args.json:
        print(json.dumps(result))
    return 0 if ok else 1
