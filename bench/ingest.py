"""Ingestion: signed webhook POSTs per second and latency to the 200.

Three servers on the same server software (uvicorn + httptools + uvloop, one process each, the
settings of ``ichido serve``), driven by the same wrk + Lua replay of the same signed stream
(2.3–3.0 KB Stripe events, 30% redeliveries of recent ids, fresh signatures each round):

- ``ichido``: ``ichido serve --workers 0`` (the receiver alone; workers would compete for the
  two cores and are measured by ``e2e``),
- ``bare``: bench/bare.py, an ASGI app that reads the body and answers 200 (the ceiling),
- ``baseline``: bench/baseline.py, the straightforward per-request design (one storage round
  trip per request, no batching).

Rounds alternate the order of the three; every number is a median over rounds, and the ratios are
medians of per-round ratios (each round's servers ran back to back under the same load).
``cpu_us`` is the server process's own CPU per request (user+system, all threads), which is
less sensitive than req/s to what else the shared machine runs; on PostgreSQL + Redis it leaves
out the database's and Redis's CPU.
"""

from __future__ import annotations

import http.client
import re
import time
from typing import Any

from ichido.testing import IchidoProcess
from bench import load, processes, report, stores, stream

TARGET_VS_BARE = {"sqlite": 0.5, "postgres+redis": 0.3}
TARGET_VS_BASELINE = 1.5


def main(argv: list[str]) -> int:
    p = report.parser("ingest", __doc__.splitlines()[0])
    p.add_argument("--backend", choices=[*stores.BACKENDS, "all"], default="all")
    p.add_argument("--rounds", type=int, help="A/B/C rounds (default 5, quick 2)")
    p.add_argument("--seconds", type=float, help="seconds of load per server per round "
                   "(default 5, quick 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    args = p.parse_args(argv)
    load.require_wrk()
    rounds = args.rounds or (2 if args.quick else 5)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    backends = stores.check_services(stores.BACKENDS if args.backend == "all" else (args.backend,))
    results = []
    with stores.workdir("ingest") as wd:
        for backend in backends:
            results.append(report.guarded(backend, run_backend,
                                      wd, rounds, seconds, args.connections))
    everything = results
    results, status = report.split_failed(results)
    headers = ["backend", "server", "req/s", "p50 ms", "p99 ms", "cpu µs/req", "non-2xx"]
    rows = []
    for r in results:
        for name in ("bare", "ichido", "baseline"):
            rows.append([r["backend"], name, r[f"rps_{name}"], r[f"p50_ms_{name}"],
                         r[f"p99_ms_{name}"], r[f"cpu_us_{name}"], r[f"non_2xx_{name}"]])
    print(report.table(f"ingest: {rounds} rounds x {seconds:g} s per server, wrk -c{args.connections}"
                  " (medians)", headers, rows))
    print()
    print(report.table("ingest ratios (medians of per-round ratios)",
                  ["backend", "ichido/bare", "target", "ichido/baseline", "target",
                   "cpu bare/ichido", "mean commit batch"],
                  [[r["backend"], r["ratio"], r["target_ratio"], r["ratio_vs_baseline"],
                    r["target_ratio_vs_baseline"], r["cpu_ratio"], r["mean_batch"]]
                   for r in results]))
    print(f"\nmachine: {report.machine()}")
    report.emit(args, {"benchmark": "ingest", "quick": args.quick, "rounds": rounds,
                  "seconds": seconds, "connections": args.connections,
                  "machine": report.machine(), "results": everything,
                  **(results[0] if len(results) == 1 else {})})
    return status


def run_backend(backend: str, wd: Any, rounds: int, seconds: float,
                connections: int) -> dict[str, Any]:
    report.say(f"ingest [{backend}]: starting servers")
    with stores.fresh_store(backend, "ingest_ichido", wd) as ist, \
            stores.fresh_store(backend, "ingest_base", wd) as bst:
        if backend != "sqlite":
            stores.migrate(ist)
        servers: dict[str, IchidoProcess] = {}
        try:
            servers["ichido"] = processes.serve_ichido(ist, workers=0)
            servers["bare"] = processes.serve_module("bare")
            servers["baseline"] = processes.serve_module("baseline", env={
                "BASELINE_DATABASE_URL": bst.database_url,
                "BASELINE_REDIS_URL": bst.redis_url or "", "STRIPE_WEBHOOK_SECRET": stream.SECRET})
            # Warm-up: imports, connections, caches; also sizes the request files.
            warm = stream.make_stream(4000)
            warm_file = stream.write_requests(warm, wd / "warm.req")
            estimate = 0.0
            for name in ("bare", "ichido", "baseline"):
                result = load.run_wrk(servers[name].port, warm_file, 1, connections=connections)
                if name != "bare":
                    estimate = max(estimate, result.rps)
            per_round: dict[str, list[dict[str, Any]]] = {n: [] for n in servers}
            order = ["bare", "ichido", "baseline"]
            for index in range(rounds):
                # Enough fresh deliveries that neither deduplicating server replays the file
                # (a replay would be all duplicates, which are cheaper).
                count = int(min(300_000, max(20_000, estimate * seconds * 1.5)))
                deliveries = stream.make_stream(count)
                path = stream.write_requests(deliveries, wd / f"round{index}.req")
                sequence = order if index % 2 == 0 else order[::-1]
                for name in sequence:
                    server = servers[name]
                    cpu0 = processes.cpu_seconds(server.pid)
                    result = load.run_wrk(server.port, path, seconds, connections=connections)
                    cpu = processes.cpu_seconds(server.pid) - cpu0
                    row = result.as_dict() | {"cpu_us": cpu / max(1, result.requests) * 1e6}
                    per_round[name].append(row)
                    if name != "bare":
                        estimate = max(estimate, result.rps)
                    if result.wrapped and name != "bare":
                        report.say(f"  warning: {name} replayed the request file (all duplicates "
                              "after that); raise the stream size")
                    report.say(f"  round {index + 1}/{rounds} {name:8s} {result.rps:9,.0f} req/s"
                          f"  p99 {result.p99_ms:6.1f} ms  cpu {row['cpu_us']:6.1f} µs/req"
                          f"  non-2xx {result.non_2xx}")
                path.unlink()
            mean_batch = _mean_batch(servers["ichido"].port)
        finally:
            for server in servers.values():
                server.close()
    out: dict[str, Any] = {"backend": backend}
    for name, rows in per_round.items():
        out[f"rps_{name}"] = round(report.median([r["rps"] for r in rows]), 1)
        out[f"p50_ms_{name}"] = round(report.median([r["p50_ms"] for r in rows]), 2)
        out[f"p99_ms_{name}"] = round(report.median([r["p99_ms"] for r in rows]), 2)
        out[f"cpu_us_{name}"] = round(report.median([r["cpu_us"] for r in rows]), 1)
        out[f"non_2xx_{name}"] = sum(r["non_2xx"] for r in rows)
        out[f"errors_{name}"] = sum(r["errors"] for r in rows)
    pairs = list(zip(per_round["ichido"], per_round["bare"], per_round["baseline"]))
    out["ratio"] = round(report.median([i["rps"] / b["rps"] for i, b, _ in pairs]), 3)
    out["ratio_vs_baseline"] = round(report.median([i["rps"] / s["rps"] for i, _, s in pairs]), 3)
    out["cpu_ratio"] = round(report.median([b["cpu_us"] / i["cpu_us"] for i, b, _ in pairs]), 3)
    out["target_ratio"] = TARGET_VS_BARE.get(backend)
    out["target_ratio_vs_baseline"] = TARGET_VS_BASELINE
    out["mean_batch"] = mean_batch
    out["per_round"] = {name: rows for name, rows in per_round.items()}
    return out


def _mean_batch(port: int) -> float | None:
    """Deliveries per durable commit, from ichido's own /metrics."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return None
    total = re.search(r"^ichido_commit_batch_size_sum ([0-9.e+]+)$", text, re.M)
    count = re.search(r"^ichido_commit_batch_size_count ([0-9.e+]+)$", text, re.M)
    if not total or not count or not float(count.group(1)):
        return None
    return round(float(total.group(1)) / float(count.group(1)), 1)
