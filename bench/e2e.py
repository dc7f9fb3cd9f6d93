"""End to end: committed effects per second, from first delivery to the effect's commit.

ichido runs as deployed: ``ichido serve --workers 0 --app bench.apps:app`` receives, and 1 or 2
``ichido worker --app bench.apps:app`` processes (one thread each, default claim batch and poll
interval) apply a simple handler (one row in ``effects``, in the transaction of the processed
marker). Two measurements, per backend and worker count:

- ``drain``: the receiver is loaded through wrk with the workers stopped (the preload), then the
  workers start; the rate is effects committed per second from the first effect seen to the last.
- ``live`` (full runs only): workers idle and ready, wrk sends the stream for a few seconds, and
  the rate is unique events over the time from the first request to the last effect committed.

The baseline measured in the same run is the straightforward inline design (bench/baseline.py
with ``BASELINE_HANDLER=1``: verify, parse, insert the event and apply the effect in one
transaction inside the HTTP request, one round trip per request), driven by the same wrk stream;
its rate is effects committed per second of load. ``ratio_vs_baseline`` compares ichido's live
rate (or drain rate in quick runs) with it, ``drain_ratio_vs_baseline`` the drain rate. Each run
also checks that no event has two effects.

On SQLite, ``settle_us_per_event`` is what a worker pays, before it claims, to move an event
from the receiver's intake into the store (``settle_intake``, the clean-up included): measured
in this process, wall and CPU time, over 20,000 events accepted in batches of 50.
"""

from __future__ import annotations

import time
from typing import Any

from ichido.testing import IchidoProcess
from bench import load, processes, report, stores, stream

APP = "bench.apps:app"
TARGET_PG_EPS = 5000


def main(argv: list[str]) -> int:
    p = report.parser("e2e", __doc__.splitlines()[0])
    p.add_argument("--backend", choices=[*stores.BACKENDS, "all"], default="all")
    p.add_argument("--rounds", type=int, help="rounds (default 2, quick 1)")
    p.add_argument("--seconds", type=float, help="seconds of load per preload / live run "
                   "(default 6, quick 1.5)")
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args(argv)
    load.require_wrk()
    rounds = args.rounds or (1 if args.quick else 2)
    seconds = args.seconds or (1.5 if args.quick else 6.0)
    live = not args.quick
    backends = stores.check_services(stores.BACKENDS if args.backend == "all" else (args.backend,))
    results = []
    with stores.workdir("e2e") as wd:
        for backend in backends:
            results.append(report.guarded(backend, run_backend,
                                      wd, rounds, seconds, args.connections, live))
    everything = results
    results, status = report.split_failed(results)
    rows = []
    for r in results:
        for w in (1, 2):
            rows.append([r["backend"], w, r[f"drain_eps_w{w}"], r.get(f"live_eps_w{w}"),
                         r["baseline_eps"], r[f"drain_ratio_vs_baseline_w{w}"],
                         r[f"ratio_vs_baseline_w{w}"], r[f"duplicate_effects"]])
    print(report.table(f"e2e: committed effects/s, {rounds} round(s) (medians)",
                  ["backend", "workers", "drain eps", "live eps", "baseline eps",
                   "drain/baseline", "ichido/baseline", "double effects"], rows))
    for r in results:
        if "settle_us_per_event" in r:
            print(f"\n{r['backend']} settle: {r['settle_us_per_event']} µs per event"
                  f" ({r['settle_cpu_us_per_event']} µs CPU)")
    print(f"\nmachine: {report.machine()}")
    report.emit(args, {"benchmark": "e2e", "quick": args.quick, "rounds": rounds, "seconds": seconds,
                  "machine": report.machine(), "results": everything,
                  **(results[0] if len(results) == 1 else {})})
    return status


def run_backend(backend: str, wd: Any, rounds: int, seconds: float, connections: int,
                live: bool) -> dict[str, Any]:
    report.say(f"e2e [{backend}]")
    runs: dict[str, list[float]] = {}
    duplicates = 0
    with stores.fresh_store(backend, "e2e_ichido", wd) as store, \
            stores.fresh_store(backend, "e2e_base", wd) as bstore:
        stores.migrate(store, APP)
        server = processes.serve_ichido(store, workers=0, app=APP)
        baseline = processes.serve_module("baseline", env={
            "BASELINE_DATABASE_URL": bstore.database_url, "BASELINE_REDIS_URL":
            bstore.redis_url or "", "STRIPE_WEBHOOK_SECRET": stream.SECRET, "BASELINE_HANDLER": "1"})
        try:
            estimate = _warm(server, baseline, wd, connections)
            for index in range(rounds):
                modes = [("drain", 1), ("drain", 2)] + ([("live", 1), ("live", 2)] if live else [])
                plan = modes + [("baseline", 0)]
                if index % 2:
                    plan = plan[::-1]
                for mode, workers in plan:
                    count = int(min(250_000, max(10_000, estimate * seconds * 1.5)))
                    path = stream.write_requests(stream.make_stream(count), wd / "e2e.req")
                    if mode == "baseline":
                        eps = _baseline(baseline, bstore, path, seconds, connections)
                        key = "baseline"
                    elif mode == "drain":
                        eps = _drain(server, store, path, seconds, connections, workers)
                        key = f"drain_w{workers}"
                    else:
                        eps = _live(server, store, path, seconds, connections, workers)
                        key = f"live_w{workers}"
                    runs.setdefault(key, []).append(eps)
                    report.say(f"  round {index + 1}/{rounds} {key:10s} {eps:9,.0f} effects/s")
                    path.unlink()
            duplicates = store.count("SELECT count(*) - count(DISTINCT event_id) FROM effects")
            duplicates += bstore.count("SELECT count(*) - count(DISTINCT event_id) FROM effects")
        finally:
            server.close()
            baseline.close()
    out: dict[str, Any] = {"backend": backend, "duplicate_effects": duplicates}
    for key, values in runs.items():
        out[f"{key}_eps" if key == "baseline" else f"{key.split('_')[0]}_eps_{key.split('_')[1]}"] \
            = round(report.median(values), 1)
    for w in (1, 2):
        best = out.get(f"live_eps_w{w}") or out.get(f"drain_eps_w{w}")
        out[f"ratio_vs_baseline_w{w}"] = report.ratio(best, out.get("baseline_eps"))
        out[f"drain_ratio_vs_baseline_w{w}"] = report.ratio(out.get(f"drain_eps_w{w}"),
                                                            out.get("baseline_eps"))
    if backend == "sqlite":
        out.update(settle_cost(wd))
    out["eps"] = max(out.get("live_eps_w2") or 0, out.get("live_eps_w1") or 0,
                     out.get("drain_eps_w2") or 0, out.get("drain_eps_w1") or 0)
    if backend != "sqlite":
        out["target_eps"] = TARGET_PG_EPS
    out["runs"] = runs
    return out


def settle_cost(wd: Any, count: int = 20_000, batch: int = 50) -> dict[str, float]:
    """µs per event to settle SQLite's intake into its store, clean-up included (wall, CPU)."""
    from ichido.config import Settings
    from ichido.event import parse_delivery
    from ichido.schema import open_inbox

    deliveries = [parse_delivery(body)
                  for body in stream.make_stream(count, duplicate_rate=0).bodies]
    with stores.fresh_store("sqlite", "e2e_settle", wd) as store:
        inbox = open_inbox(Settings(database_url=store.database_url))
        try:
            for start in range(0, len(deliveries), batch):
                inbox.accept(deliveries[start : start + batch])
            wall, cpu = time.perf_counter(), time.process_time()
            moved = 0
            while settled := inbox.settle_intake():
                moved += settled
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            inbox.close()
    assert moved == len(deliveries), (moved, len(deliveries))
    return {"settle_us_per_event": round(wall / moved * 1e6, 1),
            "settle_cpu_us_per_event": round(cpu / moved * 1e6, 1)}


def _warm(server: IchidoProcess, baseline: IchidoProcess, wd: Any, connections: int) -> float:
    path = stream.write_requests(stream.make_stream(3000), wd / "warm.req")
    estimate = 0.0
    for proc in (server, baseline):
        estimate = max(estimate, load.run_wrk(proc.port, path, 1, connections=connections).rps)
    path.unlink()
    return estimate


def _effects(store: stores.Store) -> int:
    """Effects committed so far. Polled every 20 ms while workers drain: on SQLite the effects
    table's largest rowid (rows are never deleted, so it is their count), which is a look-up,
    where count(*) walked the whole table each time (200,000 rows by the last round) on the
    cores the workers run on."""
    if store.backend == "sqlite":
        return store.count("SELECT coalesce(max(rowid), 0) FROM effects")
    return store.count("SELECT count(*) FROM effects")


def _events(store: stores.Store) -> int:
    return store.events_stored()


def _start_workers(store: stores.Store, workers: int) -> list[IchidoProcess]:
    return [processes.start_worker(store, app=APP) for _ in range(workers)]


def _wait_ready(procs: list[IchidoProcess], timeout: float = 30.0) -> None:
    """A worker prints its start-up line once its threads run."""
    for p in procs:
        p.wait_ready(timeout)


def _wait_drained(store: stores.Store, target: int, timeout: float,
                  base: int) -> tuple[float, int, float]:
    """Poll the effects count; return (time of first effect seen, count then, time of last)."""
    first_t, first_n = None, 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = _effects(store)
        now = time.monotonic()
        if first_t is None and n > base:
            first_t, first_n = now, n
        if n >= target:
            return first_t or now, first_n, now
        time.sleep(0.02)
    raise RuntimeError(f"workers did not finish: {_effects(store)} of {target} effects")


def _drain(server: IchidoProcess, store: stores.Store, path: Any, seconds: float, connections: int,
           workers: int) -> float:
    before = _events(store)
    load.run_wrk(server.port, path, seconds, connections=connections)
    total = _events(store)
    base = _effects(store)
    procs = _start_workers(store, workers)
    try:
        first_t, first_n, last_t = _wait_drained(store, total, timeout=600, base=base)
    finally:
        for proc in procs:
            proc.close()
    done = total - first_n
    report.say(f"    preloaded {total - before:,} events; drained a backlog of {total - base:,}"
          f" ({done:,} timed) in {last_t - first_t:.2f} s")
    return done / (last_t - first_t) if last_t > first_t else 0.0


def _live(server: IchidoProcess, store: stores.Store, path: Any, seconds: float, connections: int,
          workers: int) -> float:
    procs = _start_workers(store, workers)
    try:
        _wait_ready(procs)
        before = _events(store)
        base = _effects(store)
        t0 = time.monotonic()
        load.run_wrk(server.port, path, seconds, connections=connections)
        total = _events(store)
        _, _, last_t = _wait_drained(store, total, timeout=600, base=base)
    finally:
        for proc in procs:
            proc.close()
    return (total - before) / (last_t - t0)


def _baseline(baseline: IchidoProcess, store: stores.Store, path: Any, seconds: float,
              connections: int) -> float:
    before = _effects(store)
    result = load.run_wrk(baseline.port, path, seconds, connections=connections)
    return (_effects(store) - before) / result.seconds
