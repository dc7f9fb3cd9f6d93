"""The recovery tables, portable between SQLite and PostgreSQL, migrated with the core schema.

Append steps; never edit one that has shipped. This module imports nothing of ichido, so
``ichido.schema`` lists it with the other core tables at no cost.
"""

from __future__ import annotations

RECOVERY_SCHEMA: list[tuple[str, int, list[str]]] = [
    ("recovery", 1, [
        # The stale-event guard: per Stripe object, the order key of the last event applied.
        """CREATE TABLE ichido_applied (
            object_id TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            event_created BIGINT NOT NULL,
            lifecycle INTEGER NOT NULL,
            status_rank INTEGER NOT NULL,
            object_clock BIGINT NOT NULL,
            applied_at DOUBLE PRECISION NOT NULL
        )""",
        # The reconciler: per account, the `created` up to which every event is stored, and
        # the walk in progress (so a crash resumes where it stopped).
        """CREATE TABLE ichido_reconcile_cursors (
            account TEXT PRIMARY KEY,
            created BIGINT,
            walk_upper BIGINT,
            walk_lower BIGINT,
            walk_reached BIGINT,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        # Replays by filter: who, when, what, how far, how many.
        """CREATE TABLE ichido_replays (
            id TEXT PRIMARY KEY,
            actor TEXT NOT NULL,
            filter TEXT NOT NULL,
            force INTEGER NOT NULL,
            dry_run INTEGER NOT NULL,
            state TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            cursor_created BIGINT,
            cursor_id TEXT,
            matched BIGINT NOT NULL DEFAULT 0,
            requeued BIGINT NOT NULL DEFAULT 0
        )""",
        # Keyset paging of events by Stripe time (replay, the dashboard's events page).
        "CREATE INDEX ichido_events_created ON ichido_events (created, id)",
        "CREATE INDEX ichido_events_object ON ichido_events (object_id, created, id)",
        # Alerts: one row per (condition, subject, window); a storm bumps `count`.
        """CREATE TABLE ichido_alerts (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            first_at DOUBLE PRECISION NOT NULL,
            last_at DOUBLE PRECISION NOT NULL,
            count BIGINT NOT NULL,
            detail TEXT NOT NULL
        )""",
        # What the alert monitor has already looked at (watermarks, event types seen failing).
        """CREATE TABLE ichido_alert_marks (
            name TEXT PRIMARY KEY,
            value DOUBLE PRECISION NOT NULL
        )""",
    ]),
    # A replay by status pages by keyset within the status: without this the planner takes
    # the (status, type) index and sorts every matching row for each page (4,400/s at 100k
    # events instead of a steady rate).
    ("recovery", 2, [
        "CREATE INDEX ichido_events_status_created ON ichido_events (status, created, id)",
    ]),
]
