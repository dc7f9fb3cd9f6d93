"""How a replay job stands, for its page: the job's own progress (``ichido_replays``, kept by
``ichido.recovery.replay``) and how the events it selects are doing now."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ichido.inbox import EventFilter
from ichido.inbox.seams import EventLog

IN_FLIGHT = ("pending", "processing", "retrying")


def progress(inbox: EventLog, job_id: str) -> dict[str, Any] | None:
    from ichido.recovery.replay import load

    record = load(inbox, job_id)
    if record is None:
        return None
    f = record.filter
    where = EventFilter(statuses=tuple(f["statuses"]), types=tuple(f["types"]),
                        object_id=f["object_id"], since=f["since"], until=f["until"],
                        shape=f.get("shape"))
    # The job pages oldest first by `created`: what lies past its cursor is still to do, what
    # lies before it and is still in a selected status failed again (or arrived late).
    cursor = record.cursor_created
    if record.state == "running" and cursor is not None:
        left = inbox.count(replace(where, since=max(cursor + 1, where.since or cursor + 1)))
    else:
        left = inbox.count(where) if record.state == "running" else 0
    again = 0 if cursor is None else inbox.count(
        replace(where, until=min(cursor + 1, where.until or cursor + 1)))
    in_flight = inbox.count(replace(where, statuses=IN_FLIGHT))
    done = max(0, record.requeued - in_flight - again)
    return {"record": record, "total": record.matched + left, "left": left,
            "in_flight": in_flight, "again": again, "done": done,
            "filter": {k: v for k, v in f.items() if v}}
