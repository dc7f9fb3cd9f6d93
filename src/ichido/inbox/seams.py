"""The stored events as each caller sees them: one interface per caller, with only the methods
it calls, so that the type checker holds every caller to what the engines it runs on offer.

Who implements which (``Inbox`` is the base of every engine's inbox; ``SqlInbox`` the SQL one):

- the receiver's durable write, ``group_commit.DurableWrite``: every inbox, and on AWS the
  queue's (``aws.stores.QueueWrite``);
- the health check's probe, ``health.HealthProbe``: every inbox;
- ``AdminLog``, the operator's commands: every inbox, and ``aws.admin.AwsAdmin``;
- ``EventLog``, the dashboard and replays; ``Backlog``, the alerts; ``ReconcileStore``, the
  reconciler: a SQL inbox (they keep their own records in its database);
- the workers' claims are the queue's (``queue.base``); the Lambda worker's marker is its
  ledger (``aws.ledger``), which is not an inbox.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from ichido.event import Delivery
from ichido.inbox.base import Cursor, EventFilter, EventRecord

if TYPE_CHECKING:
    from ichido.db.base import Database, Transaction


class AdminLog(Protocol):
    """The operator's commands on any store: ``ichido events list/show``, ``dlq list/retry``,
    ``stats``, ``prune``."""

    def get(self, event_id: str) -> EventRecord | None: ...

    def list(self, *, status: str | None = None, type: str | None = None,
             limit: int = 50) -> builtins.list[EventRecord]: ...

    def stats(self) -> dict[str, int]: ...

    def requeue_dead(self, event_ids: Sequence[str] | None = None) -> int: ...

    def prune(self, older_than_seconds: float) -> int: ...

    def close(self) -> None: ...


class EventLog(Protocol):
    """The operator's event log: the dashboard's pages and retries, ``ichido replay``. Its
    ``database`` keeps the events: a replay's progress and the page's audit trail are written
    there, a replay's in the same transaction as the requeue it records."""

    @property
    def database(self) -> Database: ...

    def get(self, event_id: str) -> EventRecord | None: ...

    def page(self, where: EventFilter = EventFilter(), *, after: Cursor | None = None,
             limit: int = 1000, newest_first: bool = False,
             bodies: bool = True) -> list[EventRecord]: ...

    def count(self, where: EventFilter = EventFilter()) -> int: ...

    def stats(self) -> dict[str, int]: ...

    def requeue(self, event_ids: Sequence[str], *, statuses: Sequence[str],
                record: Callable[[Transaction, int], None] | None = None) -> int: ...


class Backlog(Protocol):
    """What the alerts watch: how long the oldest event has waited, and the ``database``
    where the failures, the outbox and the alerts' own marks are."""

    @property
    def database(self) -> Database: ...

    def oldest_pending(self) -> float | None: ...


class ReconcileStore(Protocol):
    """The reconciler's side: which of a page of Stripe's events are stored, the newest one
    (whose version the endpoint receives), and the store's write for those it missed. Its
    cursor and counters are kept in ``database``."""

    @property
    def database(self) -> Database: ...

    def accept(self, deliveries: Sequence[Delivery], *, cache_hits: int = 0) -> list[bool]: ...

    def page(self, where: EventFilter = EventFilter(), *, after: Cursor | None = None,
             limit: int = 1000, newest_first: bool = False,
             bodies: bool = True) -> builtins.list[EventRecord]: ...

    def list(self, *, status: str | None = None, type: str | None = None,
             limit: int = 50) -> builtins.list[EventRecord]: ...
