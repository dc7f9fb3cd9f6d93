"""The inbox role: every verified event, durable and unique on its id, and its admin operations.

Engines implement ``Inbox`` and never import each other. What to retry and how handlers run
live elsewhere (the queue and the worker); the seen tier in front is a hint (``ichido.seen``).
"""

from __future__ import annotations

import abc
import builtins
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from ichido.event import Delivery
from ichido.queue.base import Status

if TYPE_CHECKING:
    from ichido.db.base import Transaction


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
    """Which stored events ``Inbox.page`` and ``Inbox.count`` select; unset fields match all.

    ``types`` are exact types or patterns ending in ``*`` (``"customer.subscription.*"``);
    ``since``/``until`` bound the event's ``created`` (Stripe's clock, Unix seconds):
    ``since <= created < until``; ``ids``: only these events (which of them are stored).
    """

    statuses: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    object_id: str | None = None
    since: int | None = None
    until: int | None = None


#: a keyset position in the listing: the (``created``, ``id``) of the last row seen
Cursor = tuple[int, str]


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

    def bind(self) -> None:
        """Once the schema is there: check and tie what the inbox keeps beside its store
        (SQLite's intake file); nothing elsewhere."""

    def seen_namespace(self) -> str:
        """The seen tier's namespace: ids durable in this inbox, and in no copy of it (I3)."""
        # every engine's inbox has its database; the base does not declare it (issue 21's seams)
        return self.database.seen_namespace()  # type: ignore[attr-defined]  # see above

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

    def page(self, where: EventFilter = EventFilter(), *, after: Cursor | None = None,
             limit: int = 1000, newest_first: bool = False,
             bodies: bool = True) -> builtins.list[EventRecord]:
        """One page of the events ``where`` selects, in (``created``, ``id``) order (oldest
        first, or newest first), starting after the keyset ``after``.

        How to page through everything, in constant memory, however many rows match::

            cursor = None
            while rows := inbox.page(where, after=cursor, limit=1000):
                ...
                cursor = (rows[-1].created, rows[-1].id)

        The keyset is stable while events arrive (no OFFSET: nothing is skipped or shown
        twice). ``bodies=False`` leaves ``body`` empty (``b""``) for listings that do not
        show payloads. Used by ``ichido replay`` and the dashboard's events page.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot list events by filter yet")

    def count(self, where: EventFilter = EventFilter()) -> int:
        """How many stored events ``where`` selects (for progress bars and page counts)."""
        raise NotImplementedError(f"{type(self).__name__} cannot count events by filter yet")

    def requeue(self, event_ids: Sequence[str], *, statuses: Sequence[str],
                record: "Callable[[Transaction, int], None] | None" = None) -> int:
        """Give those of ``event_ids`` still in one of ``statuses`` a fresh set of attempts
        (replay), due now; return how many. ``record(tx, n)`` runs in the same transaction,
        so a job's progress commits with what it did, or not at all."""
        raise NotImplementedError(f"{type(self).__name__} cannot requeue events yet")

    @abc.abstractmethod
    def requeue_dead(self, event_ids: Sequence[str] | None = None) -> int:
        """Give dead events (all, when ``event_ids`` is None) a fresh set of attempts."""

    @abc.abstractmethod
    def prune(self, older_than_seconds: float) -> int:
        """Drop the bodies of finished events received before the window, keeping each id
        (a tombstone: dedupe outlives the prune) and every count; return how many."""

    @abc.abstractmethod
    def stats(self) -> dict[str, int]: ...

    def oldest_pending(self) -> float | None:
        """When the oldest event never tried yet was received (the backlog alert's measure)."""
        raise NotImplementedError(f"{type(self).__name__} cannot tell its backlog yet")

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
