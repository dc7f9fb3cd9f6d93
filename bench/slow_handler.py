"""Ingest while handlers are slow: the receiver's p99 while every worker thread sits in a
handler that sleeps (30 s by default) inside its transaction (issue 16 item 2).

One ``ichido serve --workers 2 --app bench.apps:slow_app`` per backend. Each round measures
ingest twice, back to back, with wrk and the usual signed stream: *idle* (the workers keep
up) and *slow* (two ``bench.slow`` events hold both worker threads, each in a transaction that
sleeps). On a single-writer store a handler holding the write lock must not make the receiver
wait (DESIGN.md: "the receiver must never wait on a handler's transaction"): the slow round's
p99 should stay near the idle one's, with no non-2xx. The ratio is slow p99 / idle p99.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import load, processes, report, stores, stream

APP = "bench.apps:slow_app"
WORKERS = 2


def main(argv: list[str]) -> int:
    p = report.parser("slow-handler", __doc__.splitlines()[0])
    p.add_argument("--backend", choices=[*stores.BACKENDS, "all"], default="sqlite")
    p.add_argument("--sleep", type=float, default=30.0, help="seconds each slow handler sleeps")
    p.add_argument("--seconds", type=float, help="seconds of load per round (default 10, "
                   "quick 5); must be shorter than --sleep")
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args(argv)
    load.require_wrk()
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    if seconds + 5 > args.sleep:
        p.error("--seconds must leave the handlers asleep for the whole slow round")
    backends = stores.check_services(stores.BACKENDS if args.backend == "all" else (args.backend,))
    with stores.workdir("slow") as wd:
        results = [report.guarded(b, run_backend, wd, seconds, args.sleep, args.connections)
                   for b in backends]
    everything = results
    results, status = report.split_failed(results)
    rows = [[r["backend"], phase, r[f"rps_{phase}"], r[f"p50_ms_{phase}"], r[f"p99_ms_{phase}"],
             r[f"max_ms_{phase}"], r[f"non_2xx_{phase}"], r[f"errors_{phase}"]]
            for r in results for phase in ("idle", "slow")]
    print(report.table(f"ingest while {WORKERS} handlers sleep {args.sleep:g} s (wrk "
                       f"-c{args.connections}, {seconds:g} s per phase)",
                       ["backend", "phase", "req/s", "p50 ms", "p99 ms", "max ms", "non-2xx",
                        "errors"], rows))
    print()
    print(report.table("slow-handler ratio", ["backend", "slow events stored",
                                              "p99 slow/idle"],
                       [[r["backend"], r["held_threads"], r["p99_ratio"]] for r in results]))
    print(f"\nmachine: {report.machine()}")
    report.emit(args, {"benchmark": "slow-handler", "quick": args.quick, "sleep": args.sleep,
                       "seconds": seconds, "machine": report.machine(), "results": everything,
                       **(results[0] if len(results) == 1 else {})})
    return status


def run_backend(backend: str, wd: Path, seconds: float, sleep: float,
                connections: int) -> dict[str, Any]:
    report.say(f"slow-handler [{backend}]")
    started = Path(tempfile.mkdtemp(prefix="slow-", dir=wd))
    out: dict[str, Any] = {"backend": backend}
    with stores.fresh_store(backend, "slow", wd) as store:
        stores.migrate(store, APP)
        server = processes.serve_ichido(store, workers=WORKERS, app=APP, extra_env={
            "BENCH_SLEEP": str(sleep), "BENCH_STARTED_DIR": str(started)})
        try:
            warm = stream.write_requests(stream.make_stream(3000), wd / "warm.req")
            load.run_wrk(server.port, warm, 1, connections=connections)
            for phase in ("idle", "slow"):
                if phase == "slow":
                    # SQLite has one writer: a second handler waits for the first one's lock
                    # (it never runs beside it), so one handler holds the store there
                    holders = 1 if backend == "sqlite" else WORKERS
                    out["held_threads"] = _hold_every_worker(server.port, started, sleep,
                                                             holders)
                path = stream.write_requests(stream.make_stream(int(max(20_000, 8000 * seconds))),
                                             wd / f"{phase}.req")
                result = load.run_wrk(server.port, path, seconds, connections=connections)
                report.say(f"  {phase:5s} {result.rps:9,.0f} req/s  p99 {result.p99_ms:7.1f} ms"
                           f"  max {result.max_ms:7.1f} ms  non-2xx {result.non_2xx}")
                for key in ("rps", "p50_ms", "p99_ms", "max_ms", "non_2xx", "errors"):
                    out[f"{key}_{phase}"] = getattr(result, key)
                path.unlink()
        finally:
            server.close()
    out["p99_ratio"] = report.ratio(out["p99_ms_slow"], out["p99_ms_idle"])
    return out


def _hold_every_worker(port: int, started: Path, timeout: float, holders: int) -> int:
    """Deliver one ``bench.slow`` event per worker thread, one after the other (so that no
    thread claims both in one batch), each once the previous one is in its handler (up to
    ``holders`` of them: the handlers that can hold the store at once). Returns how many slow
    events were stored: on a store whose receiver waits for a handler's write lock, a later
    slow event is refused (503) while an earlier one sleeps, which is the problem shown."""
    import http.client

    for held in range(1, WORKERS + 1):
        event_id = f"evt_slow_{uuid.uuid4().hex[:16]}"
        body = (b'{"id":"%s","object":"event","created":%d,"type":"bench.slow","data":'
                b'{"object":{"id":"obj_%s","object":"thing"}}}'
                % (event_id.encode(), int(time.time()), event_id.encode()))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/webhooks/stripe", body, {
            "Stripe-Signature": stream.sign(body, int(time.time())),
            "Content-Type": "application/json"})
        status = conn.getresponse().status
        conn.close()
        if status != 200:
            report.say(f"  slow event {held} answered {status}: {held - 1} thread(s) held")
            return held - 1
        running = min(held, holders)
        if not stores.wait_for(lambda: len(list(started.iterdir())) >= running, timeout):
            raise RuntimeError("a slow handler did not start")
    return WORKERS
