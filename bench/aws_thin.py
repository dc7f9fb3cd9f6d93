"""The thin-event cases of ``python -m bench cost``: bodies from the local Stripe
(``tests.aws.thin_support.ThinStripe``), whose official SDK the layout's fetch stage reads
through; each request it sends is counted as ``stripe:reads``.

``Notes`` are the thin layout's events: a thin notification of a card payment (``new``);
copies of one under a new id sent an hour after their creation (``late``, a Stripe retry) or
failing their first attempt (``failing``), naming no snapshot so that each is a change of its
own; ``twins``: a payment's thin notification, then its snapshot (the snapshot is the twin).
``Snapshots.twins`` is the other order, for the snapshot layouts: a payment's snapshot event,
then its thin twin."""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

import orjson

from bench.aws_meter import Meter

SUCCEEDED = "payment_intent.succeeded"


def stripe_world(meter: Meter) -> Any:
    """The local Stripe, its API requests counted on ``meter`` as ``stripe:reads``."""
    from tests.aws.thin_support import ThinStripe

    world = ThinStripe()
    sent = [0]
    request = world.http.request

    def counted(*args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return request(*args, **kwargs)

    world.http.request = counted  # type: ignore[method-assign]
    meter.sources["stripe:reads"] = lambda: sent[0]
    return world


def pairs(world: Any, n: int) -> list[tuple[bytes, bytes]]:
    """``n`` card payments' (snapshot, thin twin) of ``payment_intent.succeeded``."""
    out = []
    for _ in range(n):
        intent = world.pay()
        snapshot = thin = None
        for d in world.recorder.deliveries:
            if d.event["type"] == SUCCEEDED and d.event["data"]["object"]["id"] == intent:
                snapshot = d.body
            elif (d.event["type"] == f"v1.{SUCCEEDED}"
                  and d.event["related_object"]["id"] == intent):
                thin = d.body
        assert snapshot and thin, "the local Stripe sent no twins"
        out.append((snapshot, thin))
    return out


def copy_of(thin: bytes, *, created: int | None = None) -> bytes:
    """A thin notification of the same object under a new id, naming no snapshot."""
    from tests.thin.support import rfc3339

    doc = orjson.loads(thin)
    doc.pop("snapshot_event", None)
    doc["id"] = f"evt_test_65{uuid.uuid4().hex}"
    if created is not None:
        doc["created"] = rfc3339(created)
    return orjson.dumps(doc)


class Snapshots:
    """The snapshot layouts' events (``realistic_event``); twins when a world is given."""

    def __init__(self, world: Any = None) -> None:
        self.world = world

    def new(self, n: int) -> list[bytes]:
        from bench.aws_cost import realistic_event

        return [realistic_event() for _ in range(n)]

    def late(self, n: int) -> list[bytes]:
        from bench.aws_cost import realistic_event

        return [realistic_event(created=int(time.time()) - 3600) for _ in range(n)]

    def failing(self, n: int) -> list[bytes]:
        from bench.aws_cost import realistic_event

        return [realistic_event("test.fails_once") for _ in range(n)]

    def twins(self, n: int) -> list[tuple[bytes, bytes]] | None:
        return None if self.world is None else pairs(self.world, n)


class Notes:
    """The thin layout's events (see the module's docstring)."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.fail_once: set[str] = set()

    def new(self, n: int) -> list[bytes]:
        return [thin for _, thin in pairs(self.world, n)]

    def late(self, n: int) -> list[bytes]:
        [(_, thin)] = pairs(self.world, 1)
        return [copy_of(thin, created=int(time.time()) - 3600) for _ in range(n)]

    def failing(self, n: int) -> list[bytes]:
        [(_, thin)] = pairs(self.world, 1)
        bodies = [copy_of(thin) for _ in range(n)]
        self.fail_once.update(orjson.loads(b)["id"] for b in bodies)
        return bodies

    def twins(self, n: int) -> list[tuple[bytes, bytes]]:
        return [(thin, snapshot) for snapshot, thin in pairs(self.world, n)]

    def handler(self, record: Callable) -> Callable:
        """The effect's handler, failing the first attempt of the ``failing`` events."""
        def handle(event: Any, tx: Any) -> None:
            if event.id in self.fail_once and event.attempt == 1:
                raise RuntimeError("planned failure")
            record(event, tx)
        return handle
