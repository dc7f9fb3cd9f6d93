"""The queue role: claim work under a lease, finish it, or fail it for a retry or the dead letter.

Events run on it, and so does the outbox. A claim's lease lapses when its worker dies, so the
work is claimed again; its ``token`` fences the stale holder out. When to retry (the backoff) is
decided above, by the worker and the outbox, the same way for every engine.
"""

from __future__ import annotations

import abc
import enum
import random
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ichido.db.base import Transaction


class Status(enum.StrEnum):
    PENDING = "pending"  # stored, never tried
    PROCESSING = "processing"  # claimed by a worker under a lease
    RETRYING = "retrying"  # failed, will be tried again at next_attempt_at
    PROCESSED = "processed"  # handlers committed (the outbox: sent)
    IGNORED = "ignored"  # no handler for its type, or every handler said why not: done
    DEAD = "dead"  # failed max_attempts times; waits for `dlq retry`
    STALE = "stale"  # older than what was applied to its object: latest_only handlers skip it


FINISHED = (Status.PROCESSED, Status.IGNORED, Status.STALE)


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


class Queue(abc.ABC):
    """Work that must be done once: claimed under a lease, then finished or failed."""

    @abc.abstractmethod
    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        """Take up to ``limit`` due items under a lease; expired leases count as due."""

    @abc.abstractmethod
    def finish(self, finished: Mapping[Status, Sequence[Claim]]) -> int:
        """Mark claims done (``PROCESSED`` or ``IGNORED``); return how many were still held
        (a claim taken over by another worker is left to it)."""

    @abc.abstractmethod
    def fail(self, claim: Claim, error: str, retry_at: float | None) -> bool:
        """Record a failed attempt: ``RETRYING`` until ``retry_at``, or ``DEAD`` when None.
        Every failure is kept, with its attempt number, for ``events show``."""

    def give_up(self, claim: Claim, who: str) -> None:
        """Dead-letter an item claimed more often than allowed without ever finishing: the
        runs before crashed ``who`` or outlived the lease, and another would likely do the
        same."""
        self.fail(claim, f"gave up after {claim.attempt - 1} attempts that never finished"
                         f" ({who} crash or lease expiry)", None)

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
