"""The dashboard's tables: the audit trail of operators' actions and their sessions, migrated
with the core schema (the page can be switched on later without a migration). Imports nothing,
so ``ichido.schema`` lists these steps with the other core tables at no cost.
"""

from __future__ import annotations

DASHBOARD_SCHEMA: list[tuple[str, int, list[str]]] = [
    ("dashboard", 1, [
        """CREATE TABLE ichido_dashboard_actions (
            id TEXT PRIMARY KEY,
            at DOUBLE PRECISION NOT NULL,
            who TEXT NOT NULL,
            session TEXT NOT NULL,
            client TEXT,
            action TEXT NOT NULL,
            target TEXT,
            count INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX ichido_dashboard_actions_at ON ichido_dashboard_actions (at)",
        # The ids one retry requeued, so its progress can be shown as they finish.
        """CREATE TABLE ichido_dashboard_retried (
            action_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            PRIMARY KEY (action_id, event_id)
        )""",
    ]),
    # Operators' sessions, kept in the store so that every process serving the page agrees:
    # logging out, or a token taken out of ICHIDO_DASHBOARD_TOKEN, ends them everywhere.
    ("dashboard", 2, [
        """CREATE TABLE ichido_dashboard_sessions (
            id TEXT PRIMARY KEY,
            who TEXT NOT NULL,
            digest TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX ichido_dashboard_sessions_expires ON ichido_dashboard_sessions"
        " (expires_at)",
    ]),
]
