"""The pipeline torture's plan: which deliveries go out, in which order.

Every event is sent once; on top of that, ``duplicate_rate`` of all deliveries are copies of
an event sent already: a share of them *concurrent* (the same event to both receivers at the
same instant, I8 in docs/invariants.md), the rest *late* (a copy soon after, as Stripe's
retries mostly come, or now and then from far back, when the seen tier may have forgotten it).
The plan is drawn from the seed; bodies are built, and signed, only when sent.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Iterator

from bench.stream import EVENT_TYPES


@dataclass(frozen=True)
class Unit:
    """One thing the sender does: deliver event ``index`` once, or (``pair``) twice at once,
    one copy to each receiver."""

    index: int
    pair: bool = False
    copy: bool = False  # a late copy of an event sent before


@dataclass
class Plan:
    events: int
    duplicate_rate: float = 0.3
    concurrent_share: float = 0.35  # of the duplicates
    far_share: float = 0.05  # of the late copies: from anywhere before, not just recently
    recent: int = 2000
    seed: int = 0
    run: str = "run"

    def __post_init__(self) -> None:
        if not 0 <= self.duplicate_rate < 1:
            raise ValueError("duplicate_rate must be in [0, 1)")
        # copies / deliveries = d, with deliveries = events * (1 + pairs + late)
        extra = self.duplicate_rate / (1 - self.duplicate_rate)
        self.pair_rate = extra * self.concurrent_share
        self.late_rate = extra * (1 - self.concurrent_share)

    def event_id(self, index: int) -> str:
        return f"evt_{self.run}_{index:010d}"

    def index_of(self, event_id: str) -> int:
        return int(event_id.rsplit("_", 1)[1])

    def body(self, index: int, created: int) -> bytes:
        """A Stripe-shaped event (about 450 bytes); three events per PaymentIntent."""
        event_type = EVENT_TYPES[index % len(EVENT_TYPES)]
        return (b'{"id":"%s","object":"event","api_version":"2026-10-28.endive","created":%d,'
                b'"data":{"object":{"id":"pi_%s_%010d","object":"payment_intent",'
                b'"amount":%d,"currency":"jpy","status":"succeeded","metadata":'
                b'{"order_id":"ord_%010d"}}},"livemode":false,"pending_webhooks":2,'
                b'"request":{"id":null,"idempotency_key":null},"type":"%s"}' % (
                    self.event_id(index).encode(), created, self.run.encode(), index // 3,
                    500 + index % 9500, index // 3, event_type.encode()))

    def units(self) -> Iterator[Unit]:
        """Every delivery, in order: each event once (or as a pair), late copies woven in."""
        rng = random.Random(self.seed)
        due: list[tuple[int, int]] = []  # (position, event index) of late copies
        for index in range(self.events):
            while due and due[0][0] <= index:
                yield Unit(heapq.heappop(due)[1], copy=True)
            yield Unit(index, pair=rng.random() < self.pair_rate)
            late = self.late_rate
            while late > 0:  # a rate above 1 means more than one copy for some events
                if rng.random() < min(late, 1.0):
                    source = (rng.randrange(index + 1) if rng.random() < self.far_share
                              else max(0, index - rng.randrange(self.recent)))
                    heapq.heappush(due, (index + 1 + rng.randrange(self.recent), source))
                late -= 1.0
        while due:
            yield Unit(heapq.heappop(due)[1], copy=True)

    def deliveries(self) -> int:
        """How many requests (first answers only) the plan sends: pairs count twice."""
        return sum(2 if unit.pair else 1 for unit in self.units())
