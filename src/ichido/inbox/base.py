"""The inbox role: every verified event, durable and unique on its id, and its admin operations.

Engines implement ``Inbox`` and never import each other. What to retry and how handlers run
live elsewhere (the queue and the worker); the seen tier in front is a hint (``ichido.seen``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

from ichido.event import Delivery
from ichido.queue.base import Status


@dataclass(frozen=True)
class EventRecord:
    """An event as the inbox keeps it, for `events list/show` and the DLQ."""

    id: str
    type: str
    created: int
    object_id: str | None
    status: str
    attempts: int
    received_at: float
    next_attempt_at: float | None
    finished_at: float | None
    last_error: str | None
    body: bytes
    failures: tuple[tuple[int, float, str], ...] = ()


class Inbox(abc.ABC):
    """Durable truth: unique on the event id."""

    @abc.abstractmethod
    def accept(self, deliveries: Sequence[Delivery], *, cache_hits: int = 0) -> list[bool]:
        """Store the deliveries in one durable commit; True where the id was new.

        Also counts them (and ``cache_hits`` that the seen tier answered meanwhile) in the
        same commit, so the counts never disagree with what is stored.
        """

    @abc.abstractmethod
    async def accept_async(self, deliveries: Sequence[Delivery], *,
                           cache_hits: int = 0) -> list[bool]:
        """``accept`` for the receiver's event loop, which it must never block: each engine
        knows how (a local file writes at once, a database server is awaited)."""

    async def aclose(self) -> None:
        """Release what ``accept_async`` holds on the running event loop."""

    @abc.abstractmethod
    def get(self, event_id: str) -> EventRecord | None: ...

    @abc.abstractmethod
    def list(
        self, *, status: str | None = None, type: str | None = None, limit: int = 50
    ) -> list[EventRecord]: ...

    @abc.abstractmethod
    def requeue_dead(self, event_ids: Sequence[str] | None = None) -> int:
        """Give dead events (all, when ``event_ids`` is None) a fresh set of attempts."""

    @abc.abstractmethod
    def prune(self, older_than_seconds: float) -> int:
        """Delete finished events received before the window; their counts are kept."""

    @abc.abstractmethod
    def stats(self) -> dict[str, int]: ...

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``StorageUnavailable`` when the inbox cannot be reached."""

    def close(self) -> None:
        """Release what the inbox holds itself (not a database it was given)."""


COUNTER_NAMES = ("received", "unique", "duplicates_cache", "duplicates_durable")


def counts_for(accepted: Sequence[bool], cache_hits: int) -> dict[str, int]:
    """The counter increments one ``accept`` call makes."""
    new = sum(accepted)
    return {
        "received": len(accepted) + cache_hits,
        "unique": new,
        "duplicates_cache": cache_hits,
        "duplicates_durable": len(accepted) - new,
    }


def stats_from(counters: dict[str, int], by_status: dict[str, int]) -> dict[str, int]:
    """Counters plus the live status counts; pruned events still count as processed."""
    ignored = by_status.get(Status.IGNORED, 0) + counters.get("pruned_ignored", 0)
    processed = (by_status.get(Status.PROCESSED, 0) + counters.get("pruned_processed", 0)
                 + ignored)
    stats = {name: int(counters.get(name, 0)) for name in COUNTER_NAMES}
    stats.update(
        processed=int(processed),
        ignored=int(ignored),
        pending=by_status.get(Status.PENDING, 0),
        processing=by_status.get(Status.PROCESSING, 0),
        retrying=by_status.get(Status.RETRYING, 0),
        dead=by_status.get(Status.DEAD, 0),
    )
    return stats
