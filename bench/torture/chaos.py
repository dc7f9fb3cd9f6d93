"""What goes wrong, on purpose, while a torture run works: ``kill -9`` of receivers and workers
(each started again at once), a Redis ``FLUSHALL`` and a PostgreSQL restart, on the run's own
servers.

Every run has its planned faults, each due when a share of the work has begun: the unit of
work that reaches that share waits until the fault has begun, so every fault lands while other
work is under way, however small the run. Random kills come on top, every ``kill_every`` s.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from bench.torture.services import Fleet, log


@dataclass
class Faults:
    """Which faults a run has (all, by default)."""

    kills: bool = True
    redis_flush: bool = True
    pg_restart: bool = True
    kill_every: float = 8.0
    pg_down: float = 2.0
    pg_stop_mode: str = "immediate"  # a crash: PostgreSQL recovers from its write-ahead log
    settle_kills: bool = False  # SQLite: kill -9 workers while the intake holds rows to settle
    backup_restore: bool = False  # SQLite: an online backup, later the machine dies and is restored


@dataclass
class Figures:
    kills: Counter = field(default_factory=Counter)
    redis_flushes: int = 0
    pg_restarts: int = 0
    pg_down_seconds: float = 0.0
    backups: int = 0
    restores: int = 0


class Chaos:
    def __init__(self, fleet: Fleet, faults: Faults, rng: random.Random, total: int) -> None:
        self.fleet, self.faults, self.rng = fleet, faults, rng
        self.figures = Figures()
        self.lock = threading.Lock()  # one fault at a time; tear-down waits for the last
        self.error: BaseException | None = None
        self.progress: Callable[[], str] = lambda: ""
        # SQLite only: what a backup, a restore and a kill during a settle need of the run
        self.backup: Callable[[], None] = lambda: None
        self.restore: Callable[[], None] = lambda: None
        self.unsettled: Callable[[], int] = lambda: 0
        shares: list[tuple[float, str]] = []
        if faults.kills:
            shares += [(0.08, "kill-receiver"), (0.2, "kill-worker"),
                       (0.65, "kill-worker"), (0.8, "kill-receiver")]
        if faults.redis_flush:
            shares.append((0.35, "redis-flush"))
        if faults.pg_restart:
            shares.append((0.5, "pg-restart"))
        if faults.settle_kills:
            shares += [(0.3, "kill-settling"), (0.55, "kill-settling"), (0.9, "kill-settling")]
        if faults.backup_restore:
            shares += [(0.4, "backup"), (0.7, "restore")]
        self.planned = [(max(1, int(share * total)), action, threading.Event())
                        for share, action in sorted(shares)]
        self._begun = 0
        self._count_lock = threading.Lock()

    def begin(self, count: int = 1) -> None:
        """Called before each unit of work: wait while a planned fault now due has not begun."""
        with self._count_lock:
            self._begun += count
            number = self._begun
        for threshold, _, begun in self.planned:
            if number >= threshold and not begun.is_set():
                begun.wait(300)

    def run(self, running: threading.Event) -> None:
        """The chaos thread: the planned faults as their share is reached, random kills."""
        try:
            pending = list(self.planned)
            last_kill = time.monotonic()
            while running.is_set():
                if pending and self._begun >= pending[0][0]:
                    _, action, begun = pending.pop(0)
                    begun.set()
                    self.fault(action)
                    last_kill = time.monotonic() if action.startswith("kill") else last_kill
                elif (self.faults.kills
                      and time.monotonic() - last_kill > self.faults.kill_every):
                    self.fault(self.rng.choice(["kill-receiver", "kill-worker"]
                                               + ["kill-settling"] * self.faults.settle_kills))
                    last_kill = time.monotonic()
                time.sleep(0.02)
        except BaseException as exc:  # reported in the result, never silent
            self.error = exc
            log(f"chaos failed: {exc!r}")
        finally:
            for _, _, begun in self.planned:  # never leave work waiting
                begun.set()

    def fault(self, action: str) -> None:
        with self.lock:
            if action == "kill-settling":
                self.kill_settling()
            elif action.startswith("kill"):
                group = self.fleet.receivers if action == "kill-receiver" else self.fleet.workers
                victim = self.rng.choice(group)
                victim.kill()
                self.figures.kills[action.removeprefix("kill-")] += 1
                log(f"kill -9 {victim.name} ({self.progress()})")
                victim.start_and_wait()
            elif action == "redis-flush":
                self.fleet.redis.flushall()
                self.figures.redis_flushes += 1
                log(f"Redis FLUSHALL ({self.progress()})")
            elif action == "pg-restart":
                log(f"PostgreSQL stop -m {self.faults.pg_stop_mode} ({self.progress()})")
                started = time.monotonic()
                self.fleet.postgres.restart(down_seconds=self.faults.pg_down,
                                            mode=self.faults.pg_stop_mode)
                self.figures.pg_restarts += 1
                self.figures.pg_down_seconds = round(time.monotonic() - started, 1)
                log(f"PostgreSQL back after {self.figures.pg_down_seconds} s")
            elif action == "backup":
                log(f"online backup begins ({self.progress()})")
                self.backup()
                self.figures.backups += 1
            elif action == "restore":
                log(f"the machine dies; restoring the backup ({self.progress()})")
                self.restore()
                self.figures.restores += 1

    def kill_settling(self, wait: float = 30.0) -> None:
        """``kill -9`` a worker once the intake holds rows it has yet to settle, so the kill
        falls while settles are under way (workers settle before every claim)."""
        deadline = time.monotonic() + wait
        while (rows := self.unsettled()) == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        victim = self.rng.choice(self.fleet.workers)
        victim.kill()
        self.figures.kills["worker-settling" if rows else "worker"] += 1
        log(f"kill -9 {victim.name}, {rows} rows unsettled ({self.progress()})")
        victim.start_and_wait()

    def add_figures(self, result: dict[str, Any], *, error_counts_as: str) -> None:
        """The faults a run had, into its result; a chaos thread that failed is a problem of
        the run (``error_counts_as`` names the count it adds to), never a silent pass."""
        figures = self.figures
        result.update(kills=dict(figures.kills), redis_flushes=figures.redis_flushes,
                      pg_restarts=figures.pg_restarts, pg_down_seconds=figures.pg_down_seconds,
                      backups=figures.backups, restores=figures.restores)
        if self.error is not None:
            result["problems"].insert(0, f"chaos failed: {self.error!r}")
            result[error_counts_as] += 1

    @contextlib.contextmanager
    def held(self, timeout: float = 120.0) -> Iterator[None]:
        """For tear-down: a fault under way finishes first, and no other begins meanwhile."""
        locked = self.lock.acquire(timeout=timeout)
        try:
            yield
        finally:
            if locked:
                self.lock.release()
