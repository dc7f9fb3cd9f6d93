"""Every operator action, recorded with who and when, and the events a retry covered.

These are the dashboard's only writes: an operator's action, never a poll. The tables are the
``dashboard`` schema component (``schema.py``), migrated with the core's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

from ichido.dashboard.reading import Store

log = logging.getLogger("ichido.dashboard.audit")

@dataclass(frozen=True)
class Action:
    id: str
    at: float
    who: str
    session: str
    client: str | None
    action: str
    target: str | None
    count: int


def record(db: Store, action: Action, event_ids: Sequence[str] = ()) -> None:
    """Write the action (and the ids it covered) in one transaction, and log it as well."""
    log.info("dashboard action %s", json.dumps(action.__dict__, sort_keys=True))
    with db.transaction() as tx:
        tx.execute("INSERT INTO ichido_dashboard_actions (id, at, who, session, client, action,"
                   " target, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (action.id, action.at, action.who, action.session, action.client,
                    action.action, action.target, action.count))
        ids = list(dict.fromkeys(event_ids))
        for start in range(0, len(ids), 200):
            chunk = ids[start:start + 200]
            tx.execute("INSERT INTO ichido_dashboard_retried (action_id, event_id) VALUES"
                       f" {', '.join('(?, ?)' for _ in chunk)}",
                       [v for event_id in chunk for v in (action.id, event_id)])


def recent(db: Store, limit: int = 20) -> list[Action]:
    with db.reading() as tx:
        rows = tx.execute("SELECT id, at, who, session, client, action, target, count FROM"
                          " ichido_dashboard_actions ORDER BY at DESC LIMIT ?",
                          (limit,)).fetchall()
    return [Action(*row) for row in rows]


def find(db: Store, action_id: str) -> Action | None:
    with db.reading() as tx:
        row = tx.execute("SELECT id, at, who, session, client, action, target, count FROM"
                         " ichido_dashboard_actions WHERE id = ?", (action_id,)).fetchone()
    return Action(*row) if row else None


def progress(db: Store, action_id: str) -> dict[str, Any]:
    """How the events of one retry stand now: finished, still going, dead again."""
    with db.reading() as tx:
        rows = tx.execute("SELECT e.status, count(*) FROM ichido_dashboard_retried r JOIN"
                          " ichido_events e ON e.id = r.event_id WHERE r.action_id = ?"
                          " GROUP BY e.status", (action_id,)).fetchall()
    by_status = {status: int(n) for status, n in rows}
    total = sum(by_status.values())
    done = by_status.get("processed", 0) + by_status.get("ignored", 0)
    return {"total": total, "done": done, "dead": by_status.get("dead", 0),
            "going": total - done - by_status.get("dead", 0), "by_status": by_status}
