"""``python -m bench NAME [options]``: run one benchmark of the registry below.

``python -m bench all [--quick]`` runs every benchmark marked for it, in turn (the reliability
runs are not: they take minutes and judge, rather than measure). The comparison servers are
started by the benchmarks themselves as ``python -m bench SERVER --port P``.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Benchmark(NamedTuple):
    module: str
    what: str
    in_all: bool = True


#: Every benchmark, by name: its module (which has ``main(argv) -> int``) and what it shows.
BENCHMARKS: dict[str, Benchmark] = {
    "ingest": Benchmark("bench.ingest", "receiver req/s, p99 and CPU per request vs a bare "
                                        "ASGI app and a hand-written baseline"),
    "e2e": Benchmark("bench.e2e", "effects/s, receiver to handler, vs the baseline"),
    "growth": Benchmark("bench.growth", "duplicate look-ups as the stores grow"),
    "peers": Benchmark("bench.peers", "ichido vs Powertools' idempotency and a naive receiver"),
    "slow-handler": Benchmark("bench.slow_handler", "ingest p99 while every worker thread "
                              "sleeps 30 s in a handler's transaction (SQLite by default)"),
    "dashboard": Benchmark("bench.dashboard", "ingest req/s and p99 with and without an "
                           "operator polling the dashboard (issue 15)", in_all=False),
    "cost": Benchmark("bench.aws_cost", "AWS calls and DynamoDB WRU/RRU per event, each "
                      "layout and case, beside Powertools' idempotency (moto; issue 25)"),
    "replay": Benchmark("bench.replay", "replay by filter: requeued events/s and memory at "
                        "100,000 events (issue 13)"),
    "thin": Benchmark("bench.thin", "thin events (issue 23): ingest and e2e against snapshot "
                      "events, API reads per applied event, the twin check's cost"),
    "stripe-cli": Benchmark("bench.stripe_cli", "every `stripe trigger` of ichido's families "
                            "against the local Stripe, pass/fail per family", in_all=False),
    "torture": Benchmark("bench.torture.pipeline", "up to a million events, "
                         "duplicates, kill -9, Redis flush, PostgreSQL restart", in_all=False),
    "aws-torture": Benchmark("bench.torture.aws", "events through SQS FIFO + DynamoDB "
                             "(moto), hosts killed, a poison in one message group", in_all=False),
    "shop-torture": Benchmark("bench.torture.shop", "shop orders through the "
                              "local Stripe under the same faults", in_all=False),
}

#: The comparison servers, served on ``--port`` (not benchmarks).
SERVERS = {"bare": "bench.bare", "baseline": "bench.baseline"}


def usage() -> str:
    lines = ["usage: python -m bench NAME [--quick] [--json] [options]",
             "  all            every benchmark below not marked (reliability), in turn"]
    for name, bench in BENCHMARKS.items():
        mark = "" if bench.in_all else " (reliability)"
        lines.append(f"  {name:<14} {bench.what}{mark}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name == "all":
        status = 0
        for bench in BENCHMARKS.values():
            if bench.in_all:
                status |= importlib.import_module(bench.module).main(rest) or 0
        return status
    if name in SERVERS:
        return importlib.import_module(SERVERS[name]).main(rest) or 0
    if name not in BENCHMARKS:
        print(f"no benchmark {name!r}\n{usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(BENCHMARKS[name].module).main(rest) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
