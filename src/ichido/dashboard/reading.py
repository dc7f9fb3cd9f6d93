"""What the pages show, read through the interfaces the CLI uses.

The counters, an event, and the filtered, keyset-paged listing come from the inbox (``stats``,
``get``, ``page``, as ``ichido stats``, ``events show`` and ``ichido replay`` use them). What
no interface offers yet (the oldest pending age, the chart's buckets, whether a schema
component is there) is a short read over indexed columns in the database's read connection:
no write lock, no long transaction, so the receiver never waits on a page. Every read is
bounded by a LIMIT or an index range.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Protocol, Sequence

from ichido.config import LATEST_MOMENT, parse_duration
from ichido.errors import ConfigError
from ichido.inbox import Cursor, EventFilter, EventRecord
from ichido.inbox.base import SHAPES, shape_of
from ichido.inbox.seams import EventLog
from ichido.queue.base import Status

STATUSES = [status.value for status in Status]


class Store(Protocol):
    """The database role as the page uses it: a read connection, and a write transaction for
    the audit trail (``ichido.Transaction`` either way)."""

    def reading(self) -> AbstractContextManager[Any]: ...

    def transaction(self) -> AbstractContextManager[Any]: ...


DUE = ("pending", "retrying", "processing")
SEARCH_ROWS = 20_000  # free text on the id looks through this many of the newest matches


@dataclass(frozen=True)
class ListFilter:
    """The list's filters as the query string gives them (and as links keep them)."""

    type: str = ""  # exact, or a prefix ending in * (customer.subscription.*)
    status: str = ""
    object_id: str = ""
    since: str = ""  # Stripe's clock (the event's created), as replays select
    until: str = ""
    q: str = ""  # free text on the event id
    shape: str = ""  # "snapshot" or "thin" (Stripe's v2.core.event notifications)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> "ListFilter":
        values = {name: (query.get(name) or "").strip()[:200] for name in cls.__dataclass_fields__}
        if values["status"] not in STATUSES:
            values["status"] = ""
        if values["shape"] not in SHAPES:
            values["shape"] = ""
        return cls(**values)

    def query(self) -> dict[str, str]:
        return {name: value for name, value in self.__dict__.items() if value}

    def where(self, now: float, zone: dt.tzinfo = dt.timezone.utc) -> EventFilter:
        """The inbox's own filter (everything but ``q``, which no index serves); a time typed
        without a zone is in ``zone``, the page's."""
        return EventFilter(statuses=(self.status,) if self.status else (),
                           types=(self.type,) if self.type else (),
                           object_id=self.object_id or None, shape=self.shape or None,
                           since=int(parse_when(self.since, now, zone)) if self.since else None,
                           until=int(parse_when(self.until, now, zone)) if self.until else None)


def parse_when(text: str, now: float, zone: dt.tzinfo = dt.timezone.utc) -> float:
    """``2026-12-01``, ``2026-12-01T10:00`` (in ``zone`` unless it names one), or an age:
    ``24h``; from 1970 to the year 9999, so no filter overflows a store's 64-bit column."""
    try:
        moment = _moment(text, now, zone)
    except OverflowError:
        moment = None
    if moment is None or not 0 <= moment <= LATEST_MOMENT:
        raise ConfigError(f"not a time from 1970 to 9999: {text!r} (2026-12-01T10:00, or an age"
                          " such as 24h)", code="bad_filter")
    return moment


def _moment(text: str, now: float, zone: dt.tzinfo) -> float | None:
    try:
        return now - parse_duration(text)
    except ConfigError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.timestamp()


@dataclass
class Page:
    rows: list[EventRecord]
    next_cursor: str | None
    filter: ListFilter = field(default_factory=ListFilter)
    searched: int = 0  # with ``q``: how many events were looked through
    search_cut: bool = False  # ... and whether older ones were left unsearched


def events_page(inbox: EventLog, chosen: ListFilter, *, cursor: str | None = None,
                limit: int = 50, now: float | None = None,
                zone: dt.tzinfo = dt.timezone.utc) -> Page:
    """Newest first by Stripe's ``created``, keyset-paged by the inbox (``EventLog.page``): the
    next page starts after the last row shown, so paging stays cheap however deep, and new
    arrivals never shift it. Free text on the id filters the newest ``SEARCH_ROWS`` matches of
    the other filters (no index can serve a substring); a whole id is looked up directly."""
    where = chosen.where(time.time() if now is None else now, zone)
    after = _cursor(cursor)
    if not chosen.q:
        rows = inbox.page(where, after=after, limit=limit + 1, newest_first=True, bodies=False)
        return _page(rows, limit, chosen)
    found: list[EventRecord] = []
    searched, last = 0, after
    exact = inbox.get(chosen.q) if after is None else None
    if exact is not None and _matches(exact, where):
        found.append(exact)
    while len(found) <= limit and searched < SEARCH_ROWS:
        batch = inbox.page(where, after=last, limit=1000, newest_first=True, bodies=False)
        if not batch:
            break
        searched += len(batch)
        last = (batch[-1].created, batch[-1].id)
        found += [row for row in batch if chosen.q in row.id and row.id != chosen.q]
    page = _page(found, limit, chosen)
    page.searched, page.search_cut = searched, searched >= SEARCH_ROWS
    if page.next_cursor is None and page.search_cut and last is not None:
        page.next_cursor = f"{last[0]}~{last[1]}"  # search on from where this one stopped
    return page


def _page(rows: Sequence[EventRecord], limit: int, chosen: ListFilter) -> Page:
    shown = list(rows[:limit])
    more = len(rows) > limit and shown
    return Page(rows=shown, next_cursor=f"{shown[-1].created}~{shown[-1].id}" if more else None,
                filter=chosen)


def _cursor(cursor: str | None) -> Cursor | None:
    if not cursor:
        return None
    created, _, last_id = cursor.partition("~")
    try:
        return int(created), last_id
    except ValueError:
        raise ConfigError("bad page cursor", code="bad_filter") from None


def _matches(record: EventRecord, where: EventFilter) -> bool:
    return ((not where.statuses or record.status in where.statuses)
            and (not where.types or any(record.type == t or (t.endswith("*") and
                                        record.type.startswith(t[:-1])) for t in where.types))
            and (where.shape is None or shape_of(record.type) == where.shape)
            and (where.object_id is None or record.object_id == where.object_id)
            and (where.since is None or record.created >= where.since)
            and (where.until is None or record.created < where.until))


def matching_ids(inbox: EventLog, chosen: ListFilter, *, limit: int = 1000,
                 zone: dt.tzinfo = dt.timezone.utc) -> list[list[str]]:
    """The ids a filter matches, in pages of ``limit`` (a bulk retry never loads all rows)."""
    pages, cursor = [], None
    while True:
        page = events_page(inbox, chosen, cursor=cursor, limit=limit, zone=zone)
        if page.rows:
            pages.append([row.id for row in page.rows])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def overview(inbox: EventLog, db: Store, now: float | None = None) -> dict[str, Any]:
    """The counters of ``ichido stats`` plus the backlog and the age of its oldest event."""
    now = time.time() if now is None else now
    numbers = inbox.stats()
    backlog = sum(int(numbers.get(name, 0)) for name in DUE)
    with db.reading() as tx:
        # The soonest-due events, on the queue's own partial index (a new event is due when it
        # arrives): bounded work however long the backlog, where a min() over it would scan it.
        # SQLite's planner needs the hint the worker's claim uses, or it sorts the backlog.
        hint = " INDEXED BY ichido_events_due" if isinstance(tx, sqlite3.Connection) else ""
        oldest = tx.execute("SELECT min(received_at) FROM (SELECT received_at FROM ichido_events"
                            f"{hint} WHERE status IN ('pending', 'retrying', 'processing')"
                            " ORDER BY next_attempt_at LIMIT 1000) AS due").fetchone()[0]
    return {"stats": numbers, "backlog": backlog,
            "oldest_pending_age": None if oldest is None else max(0.0, now - float(oldest))}


def buckets(db: Store, span: str, now: float | None = None) -> dict[str, Any]:
    """Unique deliveries and failed attempts per minute (last hour) or per hour (last day)."""
    now = time.time() if now is None else now
    width, count = (60, 60) if span == "hour" else (3600, 24)
    end = (int(now) // width + 1) * width
    start = end - width * count
    series = {}
    with db.reading() as tx:
        for name, table, column in (("deliveries", "ichido_events", "received_at"),
                                    ("failures", "ichido_failures", "failed_at")):
            # Integer arithmetic on whole seconds: the same division on every engine.
            rows = tx.execute(f"SELECT (CAST({column} AS BIGINT) - ?) / ?, count(*) FROM {table}"
                              f" WHERE {column} >= ? GROUP BY 1",
                              (start, width, start)).fetchall()
            values = [0] * count
            for index, n in rows:
                if 0 <= int(index) < count:
                    values[int(index)] += int(n)
            series[name] = values
    return {"start": start, "width": width, "count": count, "series": series}


def schema_version(db: Store, component: str) -> int:
    """The applied version of a schema component (0: absent), e.g. whether the shop is here."""
    with db.reading() as tx:
        row = tx.execute("SELECT max(version) FROM ichido_schema WHERE component = ?",
                         (component,)).fetchone()
    return int(row[0] or 0) if row else 0


def same_object(inbox: EventLog, object_id: str | None, limit: int = 20) -> list[EventRecord]:
    if not object_id:
        return []
    return inbox.page(EventFilter(object_id=object_id), limit=limit, newest_first=True,
                      bodies=False)


def with_status(chosen: ListFilter, status: str) -> ListFilter:
    return replace(chosen, status=status)


def reconciler_state(db: Store) -> list[dict[str, Any]] | None:
    """Per account, the reconciler's cursor (every event up to it is stored) and when it last
    moved; None where the recovery tables are not in this store."""
    if schema_version(db, "recovery") < 1:
        return None
    with db.reading() as tx:
        rows = tx.execute("SELECT account, created, walk_reached, updated_at FROM"
                          " ichido_reconcile_cursors ORDER BY account LIMIT 20").fetchall()
    return [{"account": account, "cursor": created, "walking": reached, "last_run": updated}
            for account, created, reached, updated in rows]
