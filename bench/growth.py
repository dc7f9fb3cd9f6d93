"""Growth: cost per event and resident memory as the store grows from 10^3 to 10^6 events.

In one process, the store is filled through the receiver's own storage path
(``GroupCommit.store``: seen tier → one durable commit → seen tier), in batches of 1,000
realistic events (2.3–3.0 KB, parsed by ``parse_delivery``). At each size it times, per event
(medians of many samples):

- ``new x1``: one new event per commit (a lone request),
- ``new x32``: 32 new events per commit (a busy receiver's group commit),
- ``dup cache``: 32 recent duplicates, answered by the seen tier,
- ``dup durable``: 32 duplicates of random older ids, straight to ``Inbox.accept`` (the unique
  key catches them: what happens once the seen tier has forgotten an id),

and reports this process's RSS, the seen tier's entries (MemorySeenCache, bounded by
``--seen-max`` / ``ICHIDO_SEEN_MAX``, default here 50,000 so the bound is reached within the
run) and the store's size on disk.

The baseline in the same run is a second, small store (10^3 events, same backend) whose same
operations are timed right beside each sample of the growing one (order alternating): ``rel``
is the median of those paired ratios, which cancels most of the shared machine's drifting
load. ``growth`` = ``rel`` at the largest size / ``rel`` at 10^3 (target: within 1.2); the raw
wall-clock and process-CPU ratios are reported too. ``--quick`` stops at 10^5.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from typing import Any, Sequence

from bench import processes, report, stores, stream

TARGET_GROWTH = 1.2
BATCH = 32


def main(argv: list[str]) -> int:
    p = report.parser("growth", __doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    p.add_argument("--max-size", type=int, help="largest size (default 10^6, quick 10^5)")
    p.add_argument("--seen-max", type=int,
                   default=int(os.environ.get("ICHIDO_SEEN_MAX", "50000")),
                   help="the seen tier's bound (ICHIDO_SEEN_MAX; default 50,000 here)")
    args = p.parse_args(argv)
    top = args.max_size or (100_000 if args.quick else 1_000_000)
    sizes = [s for s in (1_000, 10_000, 100_000, 1_000_000, 10_000_000) if s <= top]
    samples = 15 if args.quick else 40
    backends = stores.check_services(["sqlite", "postgres"] if args.backend == "all"
                                else [args.backend])
    results = []
    with stores.workdir("growth") as wd:
        for backend in backends:
            results.append(report.guarded(backend, run_backend,
                                      wd, sizes, args.seen_max, samples))
    everything = results
    results, status = report.split_failed(results)
    for r in results:
        print(report.table(f"growth [{r['backend']}]: µs per event (medians of {samples} samples),"
                      f" seen tier bound {args.seen_max:,}",
                      ["events", "new x1", "new x32", "dup cache", "dup durable",
                       "rel x1", "rel x32", "rel cache", "rel durable", "RSS MiB",
                       "seen entries", "store MiB"],
                      [[s["size"], s["new_x1_us"], s["new_x32_us"], s["dup_cache_us"],
                        s["dup_durable_us"], s["new_x1_rel"], s["new_x32_rel"],
                        s["dup_cache_rel"], s["dup_durable_rel"], s["rss_mib"],
                        s["seen_entries"], s["store_mib"]]
                       for s in r["sizes"]]))
        g = r["growth"]
        print(f"growth, cost at {r['sizes'][-1]['size']:,} / cost at {r['sizes'][0]['size']:,}"
              f" (each relative to the reference store, timed alongside): new x1 {g['new_x1']},"
              f" new x32 {g['new_x32']}, dup cache {g['dup_cache']}, dup durable "
              f"{g['dup_durable']} (target <= {TARGET_GROWTH})\n  raw wall clock: "
              f"{r['growth_raw']}\n  this process's CPU: {r['growth_cpu']}\n"
              f"  seen tier bounded by {r['seen_max']:,}: {r['seen_bounded']}; RSS grew "
              f"{r['rss_growth_mib']} MiB\n")
    print(f"machine: {report.machine()}")
    report.emit(args, {"benchmark": "growth", "quick": args.quick, "sizes": sizes,
                  "seen_max": args.seen_max, "machine": report.machine(), "results": everything,
                  "target_growth": TARGET_GROWTH,
                  **(results[0] if len(results) == 1 else {})})
    return status


class Events:
    """Deterministic ids, so any stored event can be rebuilt without keeping it in memory."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:10]
        self.now = int(time.time())

    def event_id(self, n: int) -> str:
        return f"evt_{self.run}{n:014d}"

    def deliveries(self, numbers: Sequence[int]) -> list[Any]:
        from ichido.event import parse_delivery

        return [parse_delivery(stream.event_body(self.event_id(n), f"pi_{self.run}{n // 3:014d}",
                                            stream.EVENT_TYPES[n % len(stream.EVENT_TYPES)], self.now,
                                            (n * 7919) % 700))
                for n in numbers]


class Tier:
    """One store with its seen tier, filled through the receiver's storage step."""

    def __init__(self, database_url: str, seen_max: int) -> None:
        from ichido.config import Settings
        from ichido.group_commit import GroupCommit
        from ichido.db import open_database
        from ichido.schema import open_inbox
        from ichido.seen import open_seen

        settings = Settings(database_url=database_url, seen_max_entries=seen_max)
        self.database = open_database(settings, migrate=True)
        self.inbox = open_inbox(settings, self.database, migrate=True)
        self.seen = open_seen(settings, self.database.store_id())
        self.group = GroupCommit(self.inbox, self.seen)
        self.loop = asyncio.new_event_loop()
        self.events = Events()
        self.stored = 0

    def write(self, deliveries: list[Any]) -> None:
        self.loop.run_until_complete(self.group.store(deliveries))

    def accept(self, deliveries: list[Any]) -> None:
        """Straight to the inbox, past the seen tier, as the receiver's commit sees an id the
        tier has forgotten."""
        self.loop.run_until_complete(self.inbox.accept_async(deliveries))

    def fill(self, size: int) -> None:
        while self.stored < size:
            chunk = min(1000, size - self.stored)
            self.write(self.events.deliveries(range(self.stored, self.stored + chunk)))
            self.stored += chunk

    def fresh(self, k: int) -> list[Any]:
        batch = self.events.deliveries(range(self.stored, self.stored + k))
        self.stored += k
        return batch

    def plan(self, samples: int, rng: random.Random, seen_max: int) -> list[tuple]:
        stored = self.stored
        recent = max(0, stored - min(seen_max, 20_000) // 2)
        plan = []
        for _ in range(samples):
            plan += [("new_x1", self.write, self.fresh(1), 1) for _ in range(4)]
            plan.append(("new_x32", self.write, self.fresh(BATCH), BATCH))
            plan.append(("dup_cache", self.write,
                         self.events.deliveries(rng.sample(range(recent, stored), BATCH)), BATCH))
            plan.append(("dup_durable", self.accept,
                         self.events.deliveries(rng.sample(range(stored), BATCH)), BATCH))
        return plan

    def close(self) -> None:
        self.loop.run_until_complete(self.group.close())
        self.loop.close()
        self.seen.close()
        self.inbox.close()
        self.database.close()


def run_backend(backend: str, wd: Any, sizes: list[int], seen_max: int,
                samples: int) -> dict[str, Any]:
    report.say(f"growth [{backend}]")
    rng = random.Random(7)
    points = []
    with stores.fresh_store(backend, "growth", wd) as store, \
            stores.fresh_store(backend, "growth_ref", wd) as ref_store:
        big, ref = Tier(store.database_url, seen_max), Tier(ref_store.database_url, seen_max)
        try:
            ref.fill(sizes[0])
            for size in sizes:
                t0 = time.monotonic()
                big.fill(size)
                report.say(f"  filled to {big.stored:,} in {time.monotonic() - t0:.1f} s")
                if not points:  # a throw-away pass first: imports, caches, connections
                    _measure(samples // 3 or 1, big, ref, rng, seen_max)
                measured = _measure(samples, big, ref, rng, seen_max)
                point = {"size": big.stored, **measured}
                point.update(rss_mib=round(processes.rss_mib(), 1), seen_entries=_seen_len(big.seen),
                             store_mib=round(_store_bytes(store) / 2**20, 1),
                             ref_size=ref.stored)
                points.append(point)
                report.say(f"  {point}")
        finally:
            big.close()
            ref.close()
    first, last = points[0], points[-1]
    keys = ("new_x1", "new_x32", "dup_cache", "dup_durable")
    growth = {key: round(last[f"{key}_rel"] / first[f"{key}_rel"], 3) for key in keys}
    growth_raw = {key: round(last[f"{key}_us"] / first[f"{key}_us"], 3) for key in keys}
    growth_cpu = {key: round(last[f"{key}_cpu_us"] / first[f"{key}_cpu_us"], 3)
                  for key in keys if first[f"{key}_cpu_us"]}
    seen_sizes = [p["seen_entries"] for p in points if p["seen_entries"] is not None]
    return {"backend": backend, "sizes": points, "growth": growth, "growth_raw": growth_raw,
            "growth_cpu": growth_cpu, "max_growth": max(growth.values()),
            "target_growth": TARGET_GROWTH, "seen_max": seen_max,
            "seen_bounded": bool(seen_sizes) and max(seen_sizes) <= seen_max,
            "rss_growth_mib": round(last["rss_mib"] - first["rss_mib"], 1)}


def _measure(samples: int, big: Tier, ref: Tier, rng: random.Random,
             seen_max: int) -> dict[str, float]:
    """Median µs per event of each operation on the growing store (wall clock and this
    process's CPU), and its median ratio to the same operation on the small reference store,
    timed right next to it (order alternating), so that the machine's load drifts over both."""
    plan = list(zip(big.plan(samples, rng, seen_max), ref.plan(samples, rng, seen_max)))
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    rel: dict[str, list[float]] = {}
    for index, (mine, theirs) in enumerate(plan):
        timed = {}
        for which, (name, fn, batch, size) in (((0, mine), (1, theirs)) if index % 2 == 0
                                               else ((1, theirs), (0, mine))):
            c0, w0 = time.process_time(), time.perf_counter()
            fn(batch)
            w1, c1 = time.perf_counter(), time.process_time()
            timed[which] = ((w1 - w0) * 1e6 / size, (c1 - c0) * 1e6 / size)
        name = mine[0]
        wall.setdefault(name, []).append(timed[0][0])
        cpu.setdefault(name, []).append(timed[0][1])
        rel.setdefault(name, []).append(timed[0][0] / timed[1][0])
    out = {}
    for name in wall:
        out[f"{name}_us"] = round(statistics.median(wall[name]), 1)
        out[f"{name}_cpu_us"] = round(statistics.median(cpu[name]), 1)
        out[f"{name}_rel"] = round(statistics.median(rel[name]), 3)
    return out


def _seen_len(seen: Any) -> int | None:
    try:
        return len(seen)
    except TypeError:
        return None


def _store_bytes(store: stores.Store) -> int:
    if store.database_url.startswith("sqlite"):
        path = store.database_url.split("///", 1)[1]
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    return store.count("SELECT pg_total_relation_size('ichido_events')")
