"""What the two torture runs do the same way: the flags of their processes and faults, the
environment their processes share, running until done or ``SIGTERM``, and the report's lines.

What differs (the work, its plan, its judge) stays in pipeline.py and shop.py.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
from typing import Any, Callable

from bench.torture.chaos import Faults
from bench.torture.services import log


def add_run_flags(parser: argparse.ArgumentParser, *, kill_every: float,
                  settle_timeout: float, receivers_help: str = "receiver processes") -> None:
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--receivers", type=int, default=2, help=receivers_help)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--worker-threads", type=int, default=2)
    parser.add_argument("--lease", default="5s", help="ICHIDO_LEASE of the processes")
    parser.add_argument("--kill-every", type=float, default=kill_every,
                        help="seconds between random kill -9s (after the planned ones)")
    parser.add_argument("--no-kills", action="store_true")
    parser.add_argument("--no-redis-flush", action="store_true")
    parser.add_argument("--no-pg-restart", action="store_true")
    parser.add_argument("--pg-down", type=float, default=2.0, help="seconds PostgreSQL is down")
    parser.add_argument("--settle-timeout", type=float, default=settle_timeout)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the servers' files and logs")


def parse_run_flags(parser: argparse.ArgumentParser, argv: list[str],
                    work: str) -> argparse.Namespace:
    """The flags, with a random seed unless one is given (the report prints it, to rerun)."""
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if getattr(args, work) < 1 or args.receivers < 1 or args.workers < 1:
        parser.error(f"--{work}, --receivers and --workers must be at least 1")
    return args


def faults(args: argparse.Namespace) -> Faults:
    sqlite = getattr(args, "store", "postgres") == "sqlite"
    return Faults(kills=not args.no_kills, redis_flush=not args.no_redis_flush,
                  pg_restart=not args.no_pg_restart, kill_every=args.kill_every,
                  pg_down=args.pg_down, settle_kills=sqlite and not args.no_kills,
                  backup_restore=sqlite and not getattr(args, "no_backup_restore", True))


def process_env(args: argparse.Namespace, secret: str) -> dict[str, str]:
    """Short retries and polls: a run's faults are seconds long, and so should its recovery be."""
    return {"STRIPE_WEBHOOK_SECRET": secret, "ICHIDO_LEASE": args.lease,
            "ICHIDO_RETRY_BASE": "0.2s", "ICHIDO_RETRY_CAP": "2s", "ICHIDO_POLL_INTERVAL": "0.05s"}


def run_to_the_end(run: Callable[[], dict[str, Any]], close: Callable[[], None],
                   interrupt: Callable[[], None] = lambda: None) -> dict[str, Any] | None:
    """``run()``, then ``close()`` whatever happened; ``SIGTERM`` interrupts as Ctrl-C does
    (``interrupt`` is called first), so every process the run started is stopped. None when
    interrupted."""

    def interrupted(signum: int, _frame: Any) -> None:
        interrupt()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        return run()
    except KeyboardInterrupt:
        log("interrupted: stopping every process this run started")
        return None
    finally:
        close()
        signal.signal(signal.SIGTERM, previous)


def report(result: dict[str, Any], *, title: str, retried: str, problems: tuple[str, ...],
           ok: bool, ok_line: str, as_json: bool) -> None:
    print(title)
    if result.get("store") == "sqlite":
        print(f"  faults: kill -9 {result['kills']}, online backups {result['backups']}, "
              f"restores {result['restores']} ({result['resent_after_restore']:,} events sent "
              f"again after the restore); {retried}")
        tiers = "by the receivers' in-memory seen tiers", "by the SQLite store"
    else:
        print(f"  faults: kill -9 {result['kills']}, Redis FLUSHALL {result['redis_flushes']}, "
              f"PostgreSQL restarts {result['pg_restarts']} ({result['pg_down_seconds']} s "
              f"down); {retried}")
        tiers = "by Redis", "by PostgreSQL"
    print(f"  duplicates caught: {result['duplicates_cache']:,} {tiers[0]}, "
          f"{result['duplicates_durable']:,} {tiers[1]}")
    verdict(result, problems=problems, ok=ok, ok_line=ok_line, as_json=as_json)


def verdict(result: dict[str, Any], *, problems: tuple[str, ...], ok: bool, ok_line: str,
            as_json: bool) -> None:
    """The end every torture report shares: each problem count, each problem, the verdict,
    and the result as JSON when asked."""
    for name in problems:
        print(f"  {name.replace('_', ' ')}: {result[name]}")
    for problem in result["problems"]:
        print(f"  ✗ {problem}")
    print(f"  ✓ {ok_line}" if ok else "  ✗ FAILED")
    if as_json:
        print(json.dumps(result))
