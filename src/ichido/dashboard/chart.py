"""Charts drawn on the server as inline SVG: no script, no library, nothing fetched.

Deliveries and failures come from stored rows; duplicates have no timestamp of their own (they
are counters, never stored as rows), so the dashboard samples the counters while it is being
watched and charts the growth between samples.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

WIDTH, HEIGHT, PAD = 600, 160, 4
COLORS = {"deliveries": "#2f6fdf", "duplicates": "#d08a00", "failures": "#c8322f"}


class CounterSamples:
    """(time, duplicates so far) every ``every`` seconds at most, for a day at most."""

    def __init__(self, every: float = 10.0, keep: float = 86400.0) -> None:
        self.every = every
        self.keep = keep
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, stats: dict[str, int], now: float | None = None) -> None:
        now = time.time() if now is None else now
        duplicates = int(stats.get("duplicates_cache", 0)) + int(stats.get("duplicates_durable", 0))
        with self._lock:
            if self._samples and now - self._samples[-1][0] < self.every:
                return
            self._samples.append((now, duplicates))
            while self._samples and now - self._samples[0][0] > self.keep:
                self._samples.popleft()

    def since(self) -> float | None:
        with self._lock:
            return self._samples[0][0] if self._samples else None

    def per_bucket(self, start: float, width: float, count: int) -> list[int]:
        values = [0] * count
        with self._lock:
            samples = list(self._samples)
        for (_, before), (at, after) in zip(samples, samples[1:]):
            index = int((at - start) // width)
            if 0 <= index < count and after >= before:  # a counter reset is not a negative
                values[index] += after - before
        return values


@dataclass(frozen=True)
class Line:
    name: str
    color: str
    points: str
    total: int
    peak: int


def lines(series: dict[str, Sequence[int]]) -> dict[str, Any]:
    """Polylines on one scale, so the three can be compared at a glance."""
    peak = max([1, *(max(values, default=0) for values in series.values())])
    drawn = []
    for name, values in series.items():
        step = (WIDTH - 2 * PAD) / max(1, len(values) - 1)
        points = " ".join(
            f"{PAD + i * step:.1f},{HEIGHT - PAD - (v / peak) * (HEIGHT - 2 * PAD):.1f}"
            for i, v in enumerate(values))
        drawn.append(Line(name, COLORS.get(name, "#555"), points, sum(values),
                          max(values, default=0)))
    return {"width": WIDTH, "height": HEIGHT, "peak": peak, "lines": drawn}


@dataclass(frozen=True)
class Bar:
    label: str
    share: float  # 0..1
    width: float  # in the SVG's units
    detail: str


def bars(shares: Sequence[tuple[str, float, str]], limit: float | None = None) -> dict[str, Any]:
    """Horizontal bars of a share per label (the fee share per payment method)."""
    top = max([limit or 0.0, *(share for _, share, _ in shares), 0.01])
    room = WIDTH - 140 - 60  # labels on the left, the percentage right of the bar
    drawn = [Bar(label, share, room * share / top, detail) for label, share, detail in shares]
    mark = None if limit is None else 140 + room * limit / top
    return {"width": WIDTH, "height": 28 * len(drawn) + 8, "bars": drawn, "limit_x": mark}
