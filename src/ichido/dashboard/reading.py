"""What the pages show, read through the interfaces the CLI uses.

``stats``, ``get`` and ``requeue_dead`` come from the inbox. The filtered, keyset-paged list,
the oldest pending age and the chart's buckets are short reads over indexed columns in the
database's read connection (``reading()``): no write lock, no long transaction, so the receiver
never waits on a page. Every read is bounded by a LIMIT or an index range.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import dataclass, field, replace
from contextlib import AbstractContextManager
from typing import Any, Mapping, Protocol, Sequence

from ichido.config import parse_duration
from ichido.errors import ConfigError
from ichido.inbox import Inbox
from ichido.queue.base import Status

STATUSES = [status.value for status in Status]


class Store(Protocol):
    """The database role as the page uses it: a read connection, and a write transaction for
    the audit trail (``ichido.Transaction`` either way)."""

    def reading(self) -> AbstractContextManager[Any]: ...

    def transaction(self) -> AbstractContextManager[Any]: ...
LIST_COLUMNS = ("id, type, created, object_id, status, attempts, received_at, next_attempt_at,"
                " finished_at, last_error")
DUE = ("pending", "retrying", "processing")


@dataclass(frozen=True)
class EventFilter:
    """The list's filters, as the query string gives them (and as links keep them)."""

    type: str = ""
    status: str = ""
    object_id: str = ""
    since: str = ""
    until: str = ""
    q: str = ""  # free text on the event id

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> "EventFilter":
        values = {name: (query.get(name) or "").strip()[:200] for name in cls.__dataclass_fields__}
        if values["status"] not in STATUSES:
            values["status"] = ""
        return cls(**values)

    def query(self) -> dict[str, str]:
        return {name: value for name, value in self.__dict__.items() if value}

    def where(self, now: float) -> tuple[list[str], list[Any]]:
        clauses, params = [], []
        for column, value in (("type", self.type), ("status", self.status),
                              ("object_id", self.object_id)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.since:
            clauses.append("received_at >= ?")
            params.append(parse_when(self.since, now))
        if self.until:
            clauses.append("received_at < ?")
            params.append(parse_when(self.until, now))
        if self.q:
            clauses.append("id LIKE ? ESCAPE '!'")
            params.append("%" + self.q.replace("!", "!!").replace("%", "!%").replace("_", "!_")
                          + "%")
        return clauses, params


def parse_when(text: str, now: float) -> float:
    """``2026-12-01``, ``2026-12-01T10:00`` (UTC unless it names a zone), or an age: ``24h``."""
    try:
        return now - parse_duration(text)
    except ConfigError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"not a time: {text!r} (2026-12-01T10:00, or an age such as 24h)",
                          code="bad_filter") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


@dataclass(frozen=True)
class Row:
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


@dataclass
class Page:
    rows: list[Row]
    next_cursor: str | None
    filter: EventFilter = field(default_factory=EventFilter)


def events_page(db: Store, chosen: EventFilter, *, cursor: str | None = None,
                limit: int = 50, now: float | None = None) -> Page:
    """Newest first, paged by (received_at, id): the next page starts after the last row
    shown, so paging stays cheap however deep, and new arrivals never shift it."""
    clauses, params = chosen.where(time.time() if now is None else now)
    if cursor:
        at, _, last_id = cursor.partition("~")
        try:
            at_value = float(at)
        except ValueError:
            raise ConfigError("bad page cursor", code="bad_filter") from None
        clauses.append("(received_at < ? OR (received_at = ? AND id < ?))")
        params += [at_value, at_value, last_id]
    where = " AND ".join(clauses) or "1 = 1"
    with db.reading() as tx:
        rows = tx.execute(f"SELECT {LIST_COLUMNS} FROM ichido_events WHERE {where}"
                          " ORDER BY received_at DESC, id DESC LIMIT ?",
                          (*params, limit + 1)).fetchall()
    page = [Row(*row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = f"{page[-1].received_at!r}~{page[-1].id}" if more and page else None
    return Page(rows=page, next_cursor=next_cursor, filter=chosen)


def matching_ids(db: Store, chosen: EventFilter, *, limit: int = 1000) -> list[list[str]]:
    """The ids a filter matches, in pages of ``limit`` (a bulk retry never loads all rows)."""
    pages, cursor = [], None
    while True:
        page = events_page(db, chosen, cursor=cursor, limit=limit)
        if page.rows:
            pages.append([row.id for row in page.rows])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def overview(inbox: Inbox, db: Store, now: float | None = None) -> dict[str, Any]:
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


def same_object(db: Store, object_id: str | None, limit: int = 20) -> list[Row]:
    if not object_id:
        return []
    return events_page(db, EventFilter(object_id=object_id), limit=limit).rows


def with_status(chosen: EventFilter, status: str) -> EventFilter:
    return replace(chosen, status=status)


def dead_ids(db: Store, ids: Sequence[str]) -> list[str]:
    """Of these ids, the ones dead right now (what a retry of them will requeue)."""
    if not ids:
        return []
    with db.reading() as tx:
        rows = tx.execute("SELECT id FROM ichido_events WHERE status = 'dead' AND id IN"
                          f" ({', '.join('?' for _ in ids)})", list(ids)).fetchall()
    return [row[0] for row in rows]


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
