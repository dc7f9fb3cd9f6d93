"""The queue role: claim work under a lease, finish it, or fail it for a retry or the dead letter.

Events run on it, and so does the outbox. A claim's lease lapses when its worker dies, so the
work is claimed again; its ``token`` fences the stale holder out. When to retry (the backoff) is
decided above, by the worker and the outbox, the same way for every engine.

A process can die of one item (an out-of-memory kill, a crash in a C extension): then every
claim it held dies with it, and nothing says which item did it. So a death is charged only to
an item that ran alone in its process (``Lease``, ``RUNNING``): the claims that died in
company are claimed again to run alone, uncharged, and only an item that keeps dying alone is
given up (I5).
"""

from __future__ import annotations

import abc
import contextlib
import enum
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Protocol, Sequence

from ichido.db.base import Transaction


class Status(enum.StrEnum):
    PENDING = "pending"  # stored, never tried
    PROCESSING = "processing"  # claimed by a worker under a lease
    RETRYING = "retrying"  # failed, will be tried again at next_attempt_at
    PROCESSED = "processed"  # handlers committed (the outbox: sent)
    IGNORED = "ignored"  # no handler for its type, or every handler said why not: done
    DEAD = "dead"  # failed max_attempts times; waits for `dlq retry`
    STALE = "stale"  # older than what was applied to its object: latest_only handlers skip it
    TWIN = "twin"  # its change was applied by its twin (a snapshot and its thin event): done


FINISHED = (Status.PROCESSED, Status.IGNORED, Status.STALE, Status.TWIN)


class Lease(enum.IntEnum):
    """How an item's current lease was taken: who a death during it is charged to. Kept on the
    item (``lease_kind``), so the claim after a death knows it."""

    SHARED = 0  # runs in company: a death may be another's fault, so it is not charged
    ISOLATE = 1  # its last attempt died in company: to run again alone (``Queue.alone``)
    ALONE = 2  # runs alone in its process: a death during it is its own, and is charged


class Running:
    """What runs at once in this process: items in company (any number of them, on any
    thread), or one item alone, while nothing else of any queue runs. An item that ran alone
    when its process died is what killed it. One for the process (``RUNNING``): the event
    workers and the outbox dispatchers share it. An item waiting to run alone goes first.
    Work started by work already running (a handler that drains an outbox) is part of it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._in_company = 0
        self._alone = False
        self._waiting_alone = 0
        self._mine = threading.local()  # whether this thread runs something already

    def together(self) -> contextlib.AbstractContextManager[None]:
        return self._turn(alone=False)

    def alone(self) -> contextlib.AbstractContextManager[None]:
        return self._turn(alone=True)

    @contextlib.contextmanager
    def _turn(self, *, alone: bool) -> Iterator[None]:
        if getattr(self._mine, "running", False):
            yield
            return
        with self._changed:
            if alone:
                self._waiting_alone += 1
                try:
                    self._changed.wait_for(lambda: not (self._alone or self._in_company))
                finally:
                    self._waiting_alone -= 1
                    self._changed.notify_all()
                self._alone = True
            else:
                self._changed.wait_for(lambda: not (self._alone or self._waiting_alone))
                self._in_company += 1
        self._mine.running = True
        try:
            yield
        finally:
            self._mine.running = False
            with self._changed:
                if alone:
                    self._alone = False
                else:
                    self._in_company -= 1
                self._changed.notify_all()


RUNNING = Running()


@dataclass(frozen=True, slots=True)
class Claim:
    """Work a worker holds. ``token`` grows with every claim and fences the commit: a worker
    whose lease was taken over finds its token stale and cannot commit."""

    id: str
    type: str
    body: bytes
    attempt: int
    token: int
    object_id: str | None = None
    #: attempts of the rounds before a ``dlq retry`` or replay (``attempt`` counts this round's)
    earlier: int = 0
    lease: Lease = Lease.SHARED

    @property
    def isolate(self) -> bool:
        """Its last attempt never finished, and it was not alone: it must run alone, after
        ``Queue.alone``, so that a death is charged to whoever caused it."""
        return self.lease == Lease.ISOLATE

    @property
    def number(self) -> int:
        """The attempt's number over the item's whole life (what its failure is listed as)."""
        return self.earlier + self.attempt


class Batch:
    """The claims being processed in one transaction, and which of them finished how."""

    def __init__(self, tx: Transaction, claims: Sequence[Claim]) -> None:
        self.tx = tx
        self.claims = list(claims)
        self.finished: dict[Status, list[Claim]] = {}
        self.reasons: dict[str, str] = {}  # claim id -> why its handlers ignored it

    def finish(self, claim: Claim, status: Status, reason: str | None = None) -> None:
        self.finished.setdefault(status, []).append(claim)
        if reason:
            self.reasons[claim.id] = reason


class Claims(Protocol):
    """What everything that works off a queue calls: the event workers and the outbox
    dispatcher take due items under a lease, run one alone, fail one, or give one up."""

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]: ...

    def alone(self, claim: Claim) -> bool: ...

    def fail(self, claim: Claim, error: str, retry_at: float | None) -> bool: ...

    def give_up(self, claim: Claim, who: str) -> None: ...


class WorkerQueue(Claims, Protocol):
    """The event workers' queue: a batch of claims is finished in the transaction its handlers
    write in, so the marker and the effects commit together (I2)."""

    def processing(self, claims: Sequence[Claim]) -> contextlib.AbstractContextManager[Batch]:
        ...


class OutboxQueue(Claims, Protocol):
    """The outbox dispatcher's queue: a message is finished after it was sent, on its own."""

    def finish(self, finished: Mapping[Status, Sequence[Claim]]) -> int: ...


class Queue(abc.ABC):
    """Work that must be done once: claimed under a lease, then finished or failed. The base of
    a queue engine, which serves both ``WorkerQueue`` and ``OutboxQueue``."""

    @abc.abstractmethod
    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        """Take up to ``limit`` due items under a lease; expired leases count as due.

        An expired lease is an attempt that never finished: it counts as an attempt only if
        it ran alone (``Lease.ALONE``); if not, the item is claimed to run alone
        (``Lease.ISOLATE``), with the same attempt number. Any other runs in company."""

    @abc.abstractmethod
    def alone(self, claim: Claim) -> bool:
        """Record that ``claim`` runs alone (under ``RUNNING.alone()``, before it runs), so
        that a death during it counts as its own attempt; False when another worker has taken
        the item over."""

    @abc.abstractmethod
    def processing(self, claims: Sequence[Claim]) -> contextlib.AbstractContextManager[Batch]:
        """One transaction for a batch of claims: the handlers write in ``batch.tx``, and the
        claims finished in it (``batch.finish``) are marked in the same commit (I2)."""

    @abc.abstractmethod
    def finish(self, finished: Mapping[Status, Sequence[Claim]]) -> int:
        """Mark claims done (``PROCESSED`` or ``IGNORED``); return how many were still held
        (a claim taken over by another worker is left to it)."""

    @abc.abstractmethod
    def fail(self, claim: Claim, error: str, retry_at: float | None) -> bool:
        """Record a failed attempt: ``RETRYING`` until ``retry_at``, or ``DEAD`` when None.
        Every failure is kept, with its attempt number, for ``events show``."""

    def give_up(self, claim: Claim, who: str) -> None:
        """Dead-letter an item whose last allowed attempt ran alone and never finished: its
        ``who`` process died (or the attempt outlived its lease), and another would likely do
        the same."""
        self.fail(claim, f"gave up after {claim.attempt - 1} attempts: the last ran alone and"
                         f" never finished (its {who} process died, or it outlived its lease)",
                  None)

    def close(self) -> None:
        return None


def retry_at(attempt: int, max_attempts: int, base: float, cap: float) -> float | None:
    """When a failed attempt is tried again: after a backoff, or never (None: dead) once it
    was the last attempt allowed."""
    if attempt >= max_attempts:
        return None
    return time.time() + backoff_seconds(attempt, base, cap)


def backoff_seconds(attempt: int, base: float, cap: float,
                    rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries of many items spread
    out instead of arriving together."""
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 60))  # bounded: no float overflow
    return ceiling / 2 + rand() * ceiling / 2
