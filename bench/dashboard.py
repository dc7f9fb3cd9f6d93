"""Ingestion with and without an operator watching: does the dashboard slow the receiver?

One ``ichido serve --workers 0`` with the dashboard on (the receiver alone, as in ``ingest``),
driven by the same wrk replay of signed Stripe events. Each round runs the load twice, back to
back in alternating order: ``quiet`` (nobody on the page) and ``polled`` (a logged-in client
fetching the overview and the events list every ``--poll-interval`` seconds, ten times the
page's own 10 s refresh by default, from this process). The overview's reads are the counters,
the backlog, and an hour's and a day's buckets of the growing store; they run in the server's
thread pool, in the inbox's read connection, beside the receiver.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from ichido.testing import IchidoProcess
from bench import load, processes, report, stores, stream

TOKEN = "bench-dashboard-token-0123456789"


def main(argv: list[str]) -> int:
    p = report.parser("dashboard", __doc__.splitlines()[0])
    p.add_argument("--backend", choices=[*stores.BACKENDS, "all"], default="all")
    p.add_argument("--rounds", type=int, help="quiet/polled rounds (default 4, quick 2)")
    p.add_argument("--seconds", type=float, help="seconds of load per run (default 5, quick 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--poll-interval", type=float, default=1.0,
                   help="seconds between the watcher's page loads (default 1)")
    args = p.parse_args(argv)
    load.require_wrk()
    rounds = args.rounds or (2 if args.quick else 4)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    backends = stores.check_services(stores.BACKENDS if args.backend == "all" else (args.backend,))
    results = []
    with stores.workdir("dashboard") as wd:
        for backend in backends:
            results.append(report.guarded(backend, run_backend, wd, rounds, seconds,
                                      args.connections, args.poll_interval))
    everything = results
    results, status = report.split_failed(results)
    rows = [[r["backend"], mode, r[f"rps_{mode}"], r[f"p50_ms_{mode}"], r[f"p99_ms_{mode}"],
             r[f"cpu_us_{mode}"], r.get(f"polls_{mode}", 0), r.get(f"poll_p50_ms_{mode}")]
            for r in results for mode in ("quiet", "polled")]
    print(report.table(f"ingest while the dashboard is polled every {args.poll_interval:g} s:"
                  f" {rounds} rounds x {seconds:g} s, wrk -c{args.connections} (medians)",
                  ["backend", "page", "req/s", "p50 ms", "p99 ms", "cpu µs/req", "page loads",
                   "page p50 ms"], rows))
    print()
    print(report.table("polled/quiet (medians of per-round ratios)",
                  ["backend", "req/s", "p99", "cpu µs/req"],
                  [[r["backend"], r["rps_ratio"], r["p99_ratio"], r["cpu_ratio"]]
                   for r in results]))
    print(f"\nmachine: {report.machine()}")
    report.emit(args, {"benchmark": "dashboard", "quick": args.quick, "rounds": rounds,
                  "seconds": seconds, "poll_interval": args.poll_interval,
                  "machine": report.machine(), "results": everything})
    return status


class Watcher:
    """A logged-in operator whose browser reloads the overview and the events list."""

    def __init__(self, port: int, interval: float) -> None:
        self.base = f"http://127.0.0.1:{port}/dashboard"
        self.interval = interval
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watcher", daemon=True)

    def __enter__(self) -> "Watcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            client.post(f"{self.base}/login", data={"token": TOKEN})
            while not self._stop.is_set():
                for path in ("/", "/events"):
                    started = time.perf_counter()
                    answer = client.get(self.base + path)
                    if answer.status_code != 200:
                        raise RuntimeError(f"dashboard {path}: {answer.status_code}")
                    self.latencies.append((time.perf_counter() - started) * 1000)
                self._stop.wait(self.interval)


def run_backend(backend: str, wd: Any, rounds: int, seconds: float, connections: int,
                interval: float) -> dict[str, Any]:
    env = {"ICHIDO_DASHBOARD_TOKEN": TOKEN}
    with stores.fresh_store(backend, "dashboard", wd) as store:
        if backend != "sqlite":
            processes.ichido_cli("migrate", env={**store.env, **env})
        server = processes.serve_ichido(store, workers=0, extra_env=env)
        try:
            warm = stream.write_requests(stream.make_stream(4000), wd / "warm.req")
            estimate = load.run_wrk(server.port, warm, 1, connections=connections).rps
            per_mode: dict[str, list[dict[str, Any]]] = {"quiet": [], "polled": []}
            for index in range(rounds):
                count = int(min(300_000, max(20_000, estimate * seconds * 1.5)))
                path = stream.write_requests(stream.make_stream(count), wd / f"round{index}.req")
                order = ["quiet", "polled"] if index % 2 == 0 else ["polled", "quiet"]
                for mode in order:
                    row = _load(server, path, seconds, connections, interval, mode == "polled")
                    estimate = max(estimate, row["rps"])
                    per_mode[mode].append(row)
                    report.say(f"  round {index + 1}/{rounds} {mode:6s} {row['rps']:9,.0f} req/s"
                          f"  p99 {row['p99_ms']:6.1f} ms  cpu {row['cpu_us']:6.1f} µs/req"
                          f"  page loads {row['polls']}")
                path.unlink()
        finally:
            server.stop()
    out: dict[str, Any] = {"backend": backend}
    for mode, rows in per_mode.items():
        for key in ("rps", "p50_ms", "p99_ms", "cpu_us"):
            out[f"{key}_{mode}"] = round(report.median([r[key] for r in rows]), 2)
        out[f"polls_{mode}"] = sum(r["polls"] for r in rows)
        out[f"poll_p50_ms_{mode}"] = report.median([r["poll_p50_ms"] for r in rows
                                                if r["poll_p50_ms"] is not None])
    pairs = list(zip(per_mode["polled"], per_mode["quiet"]))
    out["rps_ratio"] = round(report.median([p["rps"] / q["rps"] for p, q in pairs]), 3)
    out["p99_ratio"] = round(report.median([p["p99_ms"] / q["p99_ms"] for p, q in pairs]), 3)
    out["cpu_ratio"] = round(report.median([p["cpu_us"] / q["cpu_us"] for p, q in pairs]), 3)
    out["per_round"] = per_mode
    return out


def _load(server: IchidoProcess, path: Any, seconds: float, connections: int, interval: float,
          polled: bool) -> dict[str, Any]:
    cpu0 = processes.cpu_seconds(server.pid)
    if polled:
        with Watcher(server.port, interval) as watcher:
            result = load.run_wrk(server.port, path, seconds, connections=connections)
        latencies = sorted(watcher.latencies)
    else:
        result = load.run_wrk(server.port, path, seconds, connections=connections)
        latencies = []
    cpu = processes.cpu_seconds(server.pid) - cpu0
    return result.as_dict() | {
        "cpu_us": cpu / max(1, result.requests) * 1e6, "polls": len(latencies),
        "poll_p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else None}
