"""The storage roles, one interface each: the durable ``Inbox`` (also the queue) and the ``SeenCache``.

Backends implement these and never import each other. Everything that is the same for every
engine (when to retry, what counts as done, how handlers run) lives above, in the worker and the
receiver.
"""

from __future__ import annotations

import abc
import enum
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from ichido.errors import LeaseLost
from ichido.event import Delivery


class Status(enum.StrEnum):
    PENDING = "pending"  # stored, never tried
    PROCESSING = "processing"  # claimed by a worker under a lease
    RETRYING = "retrying"  # failed, will be tried again at next_attempt_at
    PROCESSED = "processed"  # handlers committed
    IGNORED = "ignored"  # no handler for its type: done, nothing to do
    DEAD = "dead"  # failed max_attempts times; waits for `dlq retry`
    STALE = "stale"  # older than what was applied to its object: latest_only handlers skip it


FINISHED = (Status.PROCESSED, Status.IGNORED, Status.STALE)


@dataclass(frozen=True, slots=True)
class Claim:
    """An event a worker holds. ``token`` grows with every claim and fences the commit: a worker
    whose lease was taken over finds its token stale and cannot commit."""

    id: str
    type: str
    body: bytes
    attempt: int
    token: int
    object_id: str | None = None


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


class Transaction(Protocol):
    """What a handler's ``tx`` offers: ``execute`` with ``?`` placeholders on every backend.

    The processed marker is already written in this transaction; it commits with the handlers'
    writes or not at all (I2).
    """

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


class Batch:
    """The claims being processed in one transaction, and which of them finished how."""

    def __init__(self, tx: Transaction, claims: Sequence[Claim]) -> None:
        self.tx = tx
        self.claims = list(claims)
        self.finished: dict[Status, list[Claim]] = {}

    def finish(self, claim: Claim, status: Status) -> None:
        self.finished.setdefault(status, []).append(claim)


class Inbox(abc.ABC):
    """Durable truth: unique on the event id, and the work queue the workers claim from."""

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
    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        """Take up to ``limit`` due events under a lease; expired leases count as due."""

    @abc.abstractmethod
    def processing(self, claims: Sequence[Claim]) -> AbstractContextManager["Batch"]:
        """One transaction for a batch of claims. On entry it fences the claims (those another
        worker took over are dropped from ``batch.claims``) and holds their Stripe objects, so
        events of one object apply one at a time. On exit it writes the finished markers
        (``batch.finish``) and commits them with everything the handlers wrote (I2)."""

    @contextmanager
    def finishing(self, claim: Claim, status: Status) -> Iterator[Transaction]:
        """A batch of one that marks ``claim`` as ``status``; raises ``LeaseLost`` on entry
        when another worker has taken the event over."""
        with self.processing([claim]) as batch:
            if not batch.claims:
                raise LeaseLost(f"{claim.id}: lease taken over by another worker")
            batch.finish(claim, status)
            yield batch.tx

    @abc.abstractmethod
    def fail(self, claim: Claim, error: str, retry_at: float | None) -> bool:
        """Record a failed attempt: ``retrying`` until ``retry_at``, or ``dead`` when None."""

    @abc.abstractmethod
    def get(self, event_id: str) -> EventRecord | None: ...

    @abc.abstractmethod
    def list(
        self, *, status: str | None = None, type: str | None = None, limit: int = 50
    ) -> list[EventRecord]: ...

    def page(self, where: EventFilter = EventFilter(), *, after: Cursor | None = None,
             limit: int = 1000, newest_first: bool = False,
             bodies: bool = True) -> list[EventRecord]:
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
        """Delete finished events received before the window; their counts are kept."""

    @abc.abstractmethod
    def stats(self) -> dict[str, int]: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A plain write transaction, for domain code outside an event (e.g. an HTTP API)."""

    @abc.abstractmethod
    def store_id(self) -> str:
        """A random name this store keeps forever: the seen tier's namespace."""

    @abc.abstractmethod
    def reading(self) -> AbstractContextManager[Transaction]:
        """A connection for reads only."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``StorageUnavailable`` when the store cannot be reached."""

    @abc.abstractmethod
    def close(self) -> None: ...


class SeenCache(abc.ABC):
    """The fast tier: a hint holding ids that are already durable. Losing it loses nothing (I3)."""

    async def seen_async(self, event_ids: Sequence[str], *,
                         learn: Sequence[str] = ()) -> set[str]:
        """``seen`` for the event loop, after learning ``learn`` (ids already durable, I3): a
        remote tier does both in one round trip. A tier in memory just answers."""
        if learn:
            self.add(learn)
        return self.seen(event_ids)

    async def add_async(self, event_ids: Sequence[str]) -> None:
        self.add(event_ids)

    async def aclose(self) -> None:
        """Release what the async methods hold on the running event loop."""

    @abc.abstractmethod
    def seen(self, event_ids: Sequence[str]) -> set[str]:
        """The subset of ``event_ids`` remembered as durable."""

    @abc.abstractmethod
    def add(self, event_ids: Sequence[str]) -> None:
        """Remember ids; call only after they are durable."""

    @abc.abstractmethod
    def clear(self) -> None: ...

    def close(self) -> None:
        return None


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
    """Counters plus the live status counts; pruned events still count as processed."""
    ignored = by_status.get(Status.IGNORED, 0) + counters.get("pruned_ignored", 0)
    stale = by_status.get(Status.STALE, 0) + counters.get("pruned_stale", 0)
    processed = (by_status.get(Status.PROCESSED, 0) + counters.get("pruned_processed", 0)
                 + ignored + stale)
    stats = {name: int(counters.get(name, 0)) for name in COUNTER_NAMES}
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
