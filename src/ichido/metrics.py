"""Prometheus metrics of this process, served at ``GET /metrics``.

The durable counts (``ichido stats``) are the truth across processes; these are per process and
for dashboards.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter("ichido_webhooks_received_total",
                                "Verified deliveries, duplicates included", registry=self.registry)
        self.duplicates = Counter("ichido_duplicates_total", "Duplicates caught, by tier",
                                  ["tier"], registry=self.registry)
        self.rejected = Counter("ichido_webhooks_rejected_total", "Refused deliveries, by reason",
                                ["code"], registry=self.registry)
        self.processed = Counter("ichido_events_finished_total",
                                 "Events whose processing ended, by outcome", ["outcome"],
                                 registry=self.registry)
        self.batch_size = Histogram("ichido_commit_batch_size",
                                    "Deliveries stored per durable commit",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
                                    registry=self.registry)


METRICS = Metrics()
