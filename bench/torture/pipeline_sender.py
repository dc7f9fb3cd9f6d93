"""The pipeline torture's sender: Stripe, as far as the receivers can tell.

Lanes of keep-alive HTTP/1.1 connections (one per receiver; asyncio on raw sockets, because
an HTTP client library would cost more CPU than the receivers it loads) take the plan's units
in turn. A delivery is signed afresh at each attempt and retried on no answer or a 5xx,
against the other receiver (as a load balancer would send it), with backoff, until a 2xx or
``give_up_after`` seconds. What matters for the judge is kept per event: whether any copy was
answered 2xx (then it must have been stored, I1 in docs/invariants.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections import Counter
from typing import Awaitable, Callable

from bench.torture.chaos import Chaos
from bench.torture.pipeline_plan import Plan, Unit


class Connection:
    """One keep-alive connection; any error closes it, and the next request opens a new one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            self.writer.write(data)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"content-length:")
            length = int(lower[at + 15:lower.index(b"\r\n", at)]) if at >= 0 else 0
            body = await self.reader.readexactly(length)
            if b"connection: close" in lower:
                self.close()
            return status, body
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Sender:
    def __init__(self, plan: Plan, ports: list[int], secret: str, chaos: Chaos | None, *,
                 lanes: int = 48, timeout: float = 30.0, give_up_after: float = 600.0,
                 pace: Callable[[], Awaitable[None]] | None = None) -> None:
        self.plan, self.ports, self.secret, self.chaos = plan, ports, secret.encode(), chaos
        self.pace = pace  # awaited before each unit: may hold the lanes back
        self.lanes, self.timeout, self.give_up_after = lanes, timeout, give_up_after
        self.created = int(time.time())
        self.answered = bytearray(plan.events)  # 1: some copy of the event got a 2xx
        self.counts: Counter = Counter()  # attempts, failures, answers by kind, units, ...
        self.refusals: list[str] = []
        self.rng = random.Random(plan.seed + 1)

    def request(self, body: bytes) -> bytes:
        timestamp = int(time.time())
        mac = hmac.new(self.secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
        return (b"POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json; charset=utf-8\r\n"
                b"Stripe-Signature: t=%d,v1=%s\r\nContent-Length: %d\r\n"
                b"User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\r\n"
                % (timestamp, mac.encode(), len(body))) + body

    async def deliver(self, slot: dict[int, Connection], index: int, port: int) -> None:
        body = self.plan.body(index, self.created + index // 1000)
        started = time.monotonic()
        pause = 0.05
        while True:
            self.counts["attempts"] += 1
            status = None
            try:
                async with asyncio.timeout(self.timeout):
                    status, answer = await slot[port].request(self.request(body))
            except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    TimeoutError, ValueError):
                self.counts["no_answer"] += 1
            if status is not None and 200 <= status < 300:
                self.answered[index] = 1
                kind = ("cache" if b'"tier":"cache"' in answer else
                        "durable" if b'"tier":"durable"' in answer else "accepted")
                self.counts[f"answered_{kind}"] += 1
                return
            if status is not None and status < 500:  # a refusal: the judge reports it
                self.counts["refused"] += 1
                if len(self.refusals) < 20:
                    self.refusals.append(f"{self.plan.event_id(index)}: {status} {answer[:200]!r}")
                return
            if status is not None:
                self.counts[f"status_{status}"] += 1
            self.counts["retries"] += 1
            if time.monotonic() - started > self.give_up_after:
                self.counts["gave_up"] += 1
                return
            await asyncio.sleep(pause * (0.5 + self.rng.random()))
            pause = min(pause * 2, 1.0)
            port = self.ports[(self.ports.index(port) + 1) % len(self.ports)]

    async def lane(self, units) -> None:
        slots = [{port: Connection(port) for port in self.ports} for _ in range(2)]
        try:
            for unit in units:
                if self.pace is not None:
                    await self.pace()
                if self.chaos is not None:
                    self.chaos.begin()
                self.counts["units"] += 1
                if unit.pair:  # the same event to both receivers at the same instant
                    self.counts["concurrent_copies"] += 1
                    await asyncio.gather(self.deliver(slots[0], unit.index, self.ports[0]),
                                         self.deliver(slots[1], unit.index, self.ports[-1]))
                else:
                    self.counts["late_copies" if unit.copy else "singles"] += 1
                    await self.deliver(slots[0], unit.index, self.rng.choice(self.ports))
        finally:
            for slot in slots:
                for connection in slot.values():
                    connection.close()

    async def run(self) -> None:
        units = self.plan.units()  # one iterator, shared: each unit is taken by one lane
        await asyncio.gather(*(self.lane(units) for _ in range(self.lanes)))

    async def resend(self, indices: list[int]) -> None:
        """Deliver these events again (each a late copy), as the reconciler would."""
        units = (Unit(index, copy=True) for index in indices)
        await asyncio.gather(*(self.lane(units) for _ in range(self.lanes)))

    def progress(self) -> str:
        c = self.counts
        return (f"units {c['units']:,}, attempts {c['attempts']:,}, retries {c['retries']:,}, "
                f"answered {sum(self.answered):,}/{self.plan.events:,}")
