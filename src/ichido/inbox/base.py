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


@dataclass(frozen=True)
class EventFilter:
    """Which stored events ``SqlInbox.page`` and ``SqlInbox.count`` select; unset fields match all.

    ``types`` are exact types or patterns ending in ``*`` (``"customer.subscription.*"``);
    ``since``/``until`` bound the event's ``created`` (Stripe's clock, Unix seconds):
    ``since <= created < until``; ``ids``: only these events (which of them are stored);
    ``shape``: ``"thin"`` (Stripe's ``v2.core.event`` notifications) or ``"snapshot"``. A stored
    event's shape is its type's: thin types, and only they, begin ``v1.`` or ``v2.``
    (``shape_of``), so the type column and its index answer it.
    """

    statuses: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    object_id: str | None = None
    since: int | None = None
    until: int | None = None
    shape: str | None = None


SHAPES = ("snapshot", "thin")
THIN_TYPE_PREFIXES = ("v1.", "v2.")


def shape_of(event_type: str) -> str:
    """A stored event's shape, told by its type (no snapshot type begins ``v1.`` or ``v2.``)."""
    return "thin" if event_type.startswith(THIN_TYPE_PREFIXES) else "snapshot"


#: a keyset position in the listing: the (``created``, ``id``) of the last row seen
Cursor = tuple[int, str]


class Inbox(abc.ABC):
    """Durable truth: unique on the event id. What every engine's inbox does; its callers
    each see the part they use (``ichido.inbox.seams``)."""

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

    def bind(self) -> None:
        """Once the schema is there: check and tie what the inbox keeps beside its store
        (SQLite's intake file); nothing elsewhere."""

    @abc.abstractmethod
    def seen_namespace(self) -> str:
        """The seen tier's namespace: ids durable in this inbox, and in no copy of it (I3)."""

    def durable_among(self, event_ids: Sequence[str]) -> set[str] | None:
        """Which of ``event_ids`` this inbox holds, when it can tell at once (a local file);
        None when it cannot (a database server: a round trip the seen tier exists to save)."""
        return None

    def probe(self) -> None:
        """Raise ``StorageUnavailable`` unless a delivery can be stored now (health)."""
        self.ping()

    def check_in_place(self) -> None:
        """Raise ``StorageUnavailable`` if the store's files were deleted or replaced since
        they were opened (cheap: run on every health request, and by SQLite on every write)."""

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
        """Drop the bodies of finished events received before the window, keeping each id
        (a tombstone: dedupe outlives the prune) and every count; return how many."""

    @abc.abstractmethod
    def stats(self) -> dict[str, int]: ...

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``StorageUnavailable`` when the inbox cannot be reached."""

    def close(self) -> None:
        """Release what the inbox holds itself (not a database it was given)."""


COUNTER_NAMES = ("received", "unique", "duplicates_cache", "duplicates_durable")
RECOVERY_COUNTERS = ("reconciled", "replayed", "alerts")


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
    """Counters plus the status counts. Tombstones keep their status; the ``pruned_*``
    counters hold events that versions before tombstones deleted outright."""
    ignored = by_status.get(Status.IGNORED, 0) + counters.get("pruned_ignored", 0)
    stale = by_status.get(Status.STALE, 0) + counters.get("pruned_stale", 0)
    twins = by_status.get(Status.TWIN, 0)  # duplicates of another shape, caught by the worker
    processed = (by_status.get(Status.PROCESSED, 0) + counters.get("pruned_processed", 0)
                 + ignored + stale + twins)
    stats = {name: int(counters.get(name, 0)) for name in COUNTER_NAMES}
    stats["duplicates_twin"] = int(twins)
    stats.update(
        processed=int(processed),
        ignored=int(ignored),
        stale=int(stale),
        pending=by_status.get(Status.PENDING, 0),
        processing=by_status.get(Status.PROCESSING, 0),
        retrying=by_status.get(Status.RETRYING, 0),
        dead=by_status.get(Status.DEAD, 0),
    )
    # recovery's counters (issue 13): events the reconciler stored, replays requeued, alerts
    stats.update({name: int(counters.get(name, 0)) for name in RECOVERY_COUNTERS})
    return stats
