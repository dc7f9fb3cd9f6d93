"""The core schema: the tables every store holds, composed here, above the roles that own them.

Each owner keeps its own steps (the inbox's events, the queue's lease column, the outbox,
recovery's cursors and alerts, the dashboard's audit trail); this module lists them in the order
they shipped, so that no storage role imports the features whose tables sit beside its own.
An engine's own steps (SQLite's intake) follow, added by ``ichido.inbox.open_inbox``.
"""

from __future__ import annotations

from typing import Sequence

from ichido.config import Settings
from ichido.dashboard.schema import DASHBOARD_SCHEMA
from ichido.db import Database, Step
from ichido.inbox import Inbox
from ichido.inbox import open_inbox as open_inbox_with
from ichido.inbox.sql import INBOX_SCHEMA
from ichido.outbox import OUTBOX_SCHEMA
from ichido.queue.table import QUEUE_SCHEMA
from ichido.recovery.schema import RECOVERY_SCHEMA
from ichido.thin.schema import THIN_SCHEMA

# Append steps at the end of their owner's list; never edit or reorder one that has shipped.
CORE_SCHEMA: list[Step] = [
    *INBOX_SCHEMA[:2],  # the events, their failures and counters; the store's own name
    # The outbox is core too: recovery's alerts leave through it, with or without the shop.
    *OUTBOX_SCHEMA,
    # Recovery (issue 13): the stale guard, reconcile cursors, replays, alerts, listing indexes.
    *RECOVERY_SCHEMA,
    # The operator page's audit trail (issue 15), there whether the page is on or not.
    *DASHBOARD_SCHEMA,
    *INBOX_SCHEMA[2:],  # rounds of attempts (``dlq retry``, replays), and the inbox's later steps
    *QUEUE_SCHEMA,  # whether a lease runs its event alone (I5)
    *THIN_SCHEMA,  # thin events: the changes applied (twins apply once), what was fetched
]


def open_inbox(settings: Settings, database: Database | None = None, *,
               migrate: bool | None = None, steps: Sequence[Step] = ()) -> Inbox:
    """The inbox for ``settings`` with the core schema brought up to date (``migrate`` as in
    ``open_database``); see ``ichido.inbox.open_inbox`` for ``database`` and ``steps``."""
    return open_inbox_with(settings, database, schema=CORE_SCHEMA, migrate=migrate, steps=steps)
