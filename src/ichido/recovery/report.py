"""What a reconcile run reports, and recovery's counters behind ``ichido stats``: shared by the
reconciler's walks (``reconcile``, ``thin_walk``) and by replays, so none imports another."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ichido.db.base import Database, Transaction

SAFE_WINDOW = 72 * 3600  # younger than the shortest prune window (73 h): never pruned


@dataclass
class ReconcileReport:
    account: str
    listed: int = 0  # events Stripe listed (both passes, overlap included)
    reconciled: int = 0  # new to the inbox: stored by this run
    known: int = 0  # already stored (duplicates caught)
    skipped_delivered: int = 0  # old, delivered, missing: probably pruned; not taken
    rate_limited: int = 0  # 429 answers backed off
    cursor: int | None = None
    thin: bool = False  # whether the v2 events (thin) were walked too
    warnings: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # ids reconciled (or, dry run, would be)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "found"} | {
            "found": self.found[:50]}


def count(tx: Transaction, name: str, value: int) -> None:
    """Add to one of recovery's counters (``reconciled``, ``replayed``, ``alerts``), shown by
    ``ichido stats``; the shard is recovery's own, so it never contends with the receiver's."""
    tx.execute("INSERT INTO ichido_counters (shard, name, value) VALUES ('recovery', ?, ?)"
               " ON CONFLICT (shard, name) DO UPDATE SET value = ichido_counters.value"
               " + excluded.value", (name, value))


def recovery_counts(database: Database) -> dict[str, int]:
    """The counters recovery adds to ``ichido stats`` (``database``: where they live)."""
    with database.reading() as tx:
        rows = dict(tx.execute("SELECT name, value FROM ichido_counters WHERE shard ="
                               " 'recovery'").fetchall())
    return {name: int(rows.get(name, 0)) for name in ("reconciled", "replayed", "alerts")}
