"""Replay by filter: stored events that match go back to the queue, a page at a time.

The job pages the inbox by keyset (``EventLog.page``, 1,000 ids a page, bodies left behind), so
memory stays flat however many events match (Convoy's out-of-memory fix). Each page is
requeued in one transaction together with the job's progress (``ichido_replays``), so a job
that is interrupted, cancelled or killed resumes exactly after its last committed page, and
no page is requeued twice. A replayed event leaves the status it was selected by, which makes a
replay naturally once: replaying ``ignored`` events after adding their handler, then again,
finds nothing the second time.

``processed`` events are replayed only with ``force``: their handlers run again. Writes they
make in the transaction run again too (so they must be idempotent: upserts, forward-only
state), outbox rows they enqueue keep their keys and are not sent again, but anything a handler
does outside the transaction and the outbox (an HTTP call, a mail sent inline) happens again.
"""

from __future__ import annotations

import getpass
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Callable

import orjson

from ichido.errors import IchidoError
from ichido.db.base import Transaction
from ichido.inbox.base import EventFilter
from ichido.inbox.seams import EventLog
from ichido.queue.base import Status
from ichido.recovery.reconcile import count
from ichido.thin.fetch import forget

REPLAYABLE = (Status.DEAD, Status.IGNORED, Status.RETRYING, Status.PROCESSED, Status.STALE)
PAGE = 1000
FORCE_MEANS = ("--force re-runs the handlers of processed events: their writes in the"
               " transaction run again (keep them idempotent); outbox effects keep their"
               " idempotency keys and are not sent again; anything a handler does outside the"
               " transaction and the outbox happens again.")


class ReplayError(IchidoError):
    code = "replay_refused"


class _Overtaken(Exception):
    """Another run of the same job committed a page after this run read the job's cursor."""


@dataclass
class ReplayRecord:
    """One row of ``ichido_replays``: who, when, what, how far, how many."""

    id: str
    actor: str
    filter: dict[str, Any]
    force: bool
    dry_run: bool
    state: str  # running, done, cancelled
    started_at: float
    updated_at: float
    finished_at: float | None
    cursor_created: int | None
    cursor_id: str | None
    matched: int
    requeued: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Replay:
    """``Replay.start(inbox, where, ...)`` or ``Replay.resume(inbox, job_id)``, then ``run()``."""

    def __init__(self, inbox: EventLog, record: ReplayRecord, page_size: int = PAGE) -> None:
        self.inbox, self.record, self.page_size = inbox, record, page_size
        f = record.filter
        self.where = EventFilter(statuses=tuple(f["statuses"]), types=tuple(f["types"]),
                                 object_id=f["object_id"], since=f["since"], until=f["until"],
                                 shape=f.get("shape"))
        # thin events: fetch again what they point to, instead of what was fetched before
        self.refetch = bool(f.get("refetch"))

    @classmethod
    def start(cls, inbox: EventLog, where: EventFilter, *, force: bool = False,
              dry_run: bool = False, actor: str | None = None,
              page_size: int = PAGE, refetch: bool = False) -> "Replay":
        if not where.statuses:
            raise ReplayError("name the statuses to replay (--status dead, ignored, retrying,"
                              " processed or stale)")
        unknown = set(where.statuses) - {s.value for s in REPLAYABLE}
        if unknown:
            raise ReplayError(f"cannot replay status {', '.join(sorted(unknown))}: pending and"
                              " processing events are on their way already")
        if Status.PROCESSED in where.statuses and not force:
            raise ReplayError(f"replaying processed events needs --force. {FORCE_MEANS}",
                              code="force_required")
        now = time.time()
        record = ReplayRecord(
            id=f"rpl_{uuid.uuid4().hex[:16]}", actor=actor or default_actor(),
            filter={"statuses": list(where.statuses), "types": list(where.types),
                    "object_id": where.object_id, "since": where.since, "until": where.until,
                    **({"shape": where.shape} if where.shape else {}),
                    **({"refetch": True} if refetch else {})},
            force=force, dry_run=dry_run, state="running", started_at=now, updated_at=now,
            finished_at=None, cursor_created=None, cursor_id=None, matched=0, requeued=0)
        with inbox.database.transaction() as tx:
            tx.execute(f"INSERT INTO ichido_replays ({', '.join(_COLUMNS)}) VALUES"
                       f" ({', '.join('?' for _ in _COLUMNS)})", _row(record))
        return cls(inbox, record, page_size)

    @classmethod
    def resume(cls, inbox: EventLog, job_id: str, page_size: int = PAGE) -> "Replay":
        record = load(inbox, job_id)
        if record is None:
            raise ReplayError(f"no replay {job_id}", code="not_found")
        if record.state == "done":
            raise ReplayError(f"replay {job_id} is done already")
        with inbox.database.transaction() as tx:
            tx.execute("UPDATE ichido_replays SET state = 'running', updated_at = ? WHERE id = ?",
                       (time.time(), job_id))
        record.state = "running"
        return cls(inbox, record, page_size)

    def total(self) -> int:
        """What is left to look at, plus what was done (for a progress bar)."""
        return self.record.matched + self.inbox.count(self.where)

    def run(self, progress: Callable[[ReplayRecord], None] | None = None,
            stop: Callable[[], bool] | None = None) -> ReplayRecord:
        """Page until done, ``stop()`` says so, or someone cancelled the job (``cancel``)."""
        record = self.record
        try:
            while True:
                if (stop is not None and stop()) or self._cancelled():
                    return self._end("cancelled")
                after = (None if record.cursor_created is None
                         else (record.cursor_created, record.cursor_id or ""))
                rows = self.inbox.page(self.where, after=after, limit=self.page_size,
                                       bodies=False)
                if not rows:
                    return self._end("done")
                if not self._page([r.id for r in rows], (rows[-1].created, rows[-1].id)):
                    self._reload()  # another run of this job took that page: go on after it
                    if record.state != "running":
                        return record
                    continue
                if progress is not None:
                    progress(record)
        except KeyboardInterrupt:
            self._end("cancelled")
            raise

    def _page(self, ids: list[str], last: tuple[int, str]) -> bool:
        """Requeue one page and move the job past it, in one transaction, only if the job is
        still where this run read it (``matched`` grows with every page, so it versions the
        row): two runs of one job (resumed twice at once) never both count a page. False: the
        page was another run's, and nothing of it was written."""
        record = self.record
        done: list[int] = []

        def note(tx: Transaction, requeued: int) -> None:
            moved = tx.execute(
                "UPDATE ichido_replays SET cursor_created = ?, cursor_id = ?, matched ="
                " matched + ?, requeued = requeued + ?, updated_at = ? WHERE id = ?"
                " AND matched = ?", (last[0], last[1], len(ids), requeued, time.time(),
                                     record.id, record.matched)).rowcount
            if moved != 1:
                raise _Overtaken  # rolls the requeue back with it
            if requeued:
                count(tx, "replayed", requeued)
                if self.refetch:
                    forget(tx, ids)
            done.append(requeued)

        try:
            if record.dry_run:
                with self.inbox.database.transaction() as tx:
                    note(tx, 0)
            else:
                self.inbox.requeue(ids, statuses=self.where.statuses, record=note)
        except _Overtaken:
            return False
        record.matched += len(ids)
        record.requeued += done[0]
        record.cursor_created, record.cursor_id = last
        return True

    def _reload(self) -> None:
        fresh = load(self.inbox, self.record.id)
        if fresh is not None:
            vars(self.record).update(vars(fresh))

    def _cancelled(self) -> bool:
        with self.inbox.database.reading() as tx:
            row = tx.execute("SELECT state FROM ichido_replays WHERE id = ?",
                             (self.record.id,)).fetchone()
        return row is not None and row[0] == "cancelled"

    def _end(self, state: str) -> ReplayRecord:
        now = time.time()
        with self.inbox.database.transaction() as tx:
            tx.execute("UPDATE ichido_replays SET state = ?, updated_at = ?, finished_at = ?"
                       " WHERE id = ?", (state, now, now if state == "done" else None,
                                         self.record.id))
        self.record.state, self.record.updated_at = state, now
        self.record.finished_at = now if state == "done" else None
        return self.record


def cancel(inbox: EventLog, job_id: str) -> bool:
    """Ask a running job to stop after its current page (from any process)."""
    with inbox.database.transaction() as tx:
        return tx.execute("UPDATE ichido_replays SET state = 'cancelled', updated_at = ?"
                          " WHERE id = ? AND state = 'running'", (time.time(), job_id)
                          ).rowcount == 1


def load(inbox: EventLog, job_id: str) -> ReplayRecord | None:
    with inbox.database.reading() as tx:
        row = tx.execute(f"SELECT {', '.join(_COLUMNS)} FROM ichido_replays WHERE id = ?",
                         (job_id,)).fetchone()
    return _record(row) if row else None


def history(inbox: EventLog, limit: int = 20) -> list[ReplayRecord]:
    with inbox.database.reading() as tx:
        rows = tx.execute(f"SELECT {', '.join(_COLUMNS)} FROM ichido_replays"
                          " ORDER BY started_at DESC LIMIT ?", (limit,)).fetchall()
    return [_record(row) for row in rows]


_COLUMNS = ("id", "actor", "filter", "force", "dry_run", "state", "started_at", "updated_at",
            "finished_at", "cursor_created", "cursor_id", "matched", "requeued")


def _row(record: ReplayRecord) -> tuple:
    values = asdict(record)
    values["filter"] = orjson.dumps(record.filter).decode()
    values["force"], values["dry_run"] = int(record.force), int(record.dry_run)
    return tuple(values[name] for name in _COLUMNS)


def _record(row: Any) -> ReplayRecord:
    values = dict(zip(_COLUMNS, row))
    values["filter"] = orjson.loads(values["filter"])
    values["force"], values["dry_run"] = bool(values["force"]), bool(values["dry_run"])
    values["matched"], values["requeued"] = int(values["matched"]), int(values["requeued"])
    return ReplayRecord(**values)
