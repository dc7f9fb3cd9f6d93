"""Replay throughput and memory: ``python -m bench replay [--events 100000] [--database-url U]``.

Stores ``--events`` events, lets the worker mark them ``ignored`` (no handler), then times the
replay job that requeues them all (keyset pages of 1,000, one transaction a page) and, with
``--process``, the worker draining them again through a no-op handler. Memory is the replay's
peak of Python allocations (``tracemalloc``) and the process's peak RSS growth: flat in the
number of events is the point (Convoy's out-of-memory fix).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
import uuid

import orjson

from ichido.config import Settings
from ichido.event import parse_delivery
from ichido.inbox import EventFilter
from ichido.queue.base import Status
from ichido.queue import open_queue
from ichido.schema import open_inbox


def body(n: int) -> bytes:
    """About a kilobyte, the size of a small real event."""
    return orjson.dumps({
        "id": f"evt_bench_{n:09d}_{uuid.uuid4().hex[:8]}", "object": "event",
        "api_version": "2026-10-28", "created": 1_760_000_000 + n // 10, "type": "invoice.paid",
        "data": {"object": {"id": f"in_{n % 5000:06d}", "object": "invoice", "status": "paid",
                            "lines": {"data": [{"description": "x" * 700}]}}},
        "livemode": False, "pending_webhooks": 0, "request": {"id": None}})


def fill(inbox, events: int) -> None:
    for start in range(0, events, 1000):
        inbox.accept([parse_delivery(body(n)) for n in range(start, min(events, start + 1000))])
    queue = open_queue(Settings(), inbox)
    while claims := queue.claim("bench", 1000, 600):
        queue.finish({Status.IGNORED: claims})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench replay")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--process", action="store_true", help="also drain the replayed events")
    parser.add_argument("--quick", action="store_true", help="10,000 events")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    events = 10_000 if args.quick else args.events
    directory = tempfile.mkdtemp(prefix="ichido-bench-replay-")
    url = args.database_url or f"sqlite:///{os.path.join(directory, 'replay.db')}"
    settings = Settings(database_url=url)
    inbox = open_inbox(settings, migrate=True)
    from ichido.recovery.replay import Replay

    started = time.perf_counter()
    fill(inbox, events)
    filled = time.perf_counter() - started

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    record = Replay.start(inbox, EventFilter(statuses=(Status.IGNORED,)), actor="bench").run()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    result = {"events": events, "store": url.split(":", 1)[0], "fill_s": round(filled, 1),
              "replay_s": round(seconds, 2), "replay_per_s": round(record.requeued / seconds),
              "replay_peak_python_mib": round(peak / 2**20, 1),
              "rss_growth_mib": round(rss_growth / 1024, 1), "requeued": record.requeued}
    if args.process:
        from ichido.app import App

        app = App(settings, workers=0)
        app.on("invoice.paid")(lambda event, tx: None)
        started = time.perf_counter()
        done = app.worker().drain()
        result["process_per_s"] = round(done / (time.perf_counter() - started))
        app.inbox.close()
    inbox.close()
    shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"replay of {events:,} events ({result['store']}): {result['replay_per_s']:,}/s"
              f" ({result['replay_s']} s), peak {result['replay_peak_python_mib']} MiB of"
              f" Python allocations, RSS +{result['rss_growth_mib']} MiB"
              + (f"; processed again at {result['process_per_s']:,}/s" if args.process else ""))
    return 0
