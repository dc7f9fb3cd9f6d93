"""Storage backends, picked by URL: ``sqlite:///…`` (default) or ``postgresql://…``."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Sequence

from ichido.config import Settings
from ichido.errors import ConfigError
from ichido.inbox.base import (Claim, Cursor, EventFilter, EventRecord, Inbox, SeenCache, Status,
                               Transaction)
from ichido.inbox.memory import MemorySeenCache
from ichido.inbox.migrations import Step

__all__ = ["Claim", "Cursor", "EventFilter", "EventRecord", "Inbox", "SeenCache", "Status",
           "Transaction", "open_inbox", "open_seen_cache"]


def process_shard() -> str:
    """A name for this process's counter rows, so concurrent writers never share a hot row."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def open_inbox(settings: Settings, *, migrate: bool | None = None,
               steps: Sequence[Step] = ()) -> Inbox:
    """Open the store named by ``settings.database_url``.

    ``migrate=None`` is each engine's default: the embedded SQLite file sets itself up (zero
    set-up), PostgreSQL only checks and asks for ``ichido migrate`` when it is behind.
    ``steps`` are extra schema steps (domain tables) that travel with the core schema.
    """
    url = settings.database_url
    scheme = url.split(":", 1)[0]
    if scheme == "sqlite":
        from ichido.inbox.sqlite import SqliteInbox

        return SqliteInbox(url, synchronous=settings.sqlite_synchronous, shard=process_shard(),
                           migrate=True if migrate is None else migrate, steps=steps)
    if scheme in ("postgresql", "postgres"):
        from ichido.inbox.postgres import PostgresInbox

        return PostgresInbox(url, shard=process_shard(), pool_size=settings.db_pool_size,
                             migrate=bool(migrate), steps=steps)
    raise ConfigError(f"unsupported ICHIDO_DATABASE_URL scheme {scheme!r}: use sqlite:/// or"
                      " postgresql://")


def open_seen_cache(settings: Settings, namespace: str) -> SeenCache:
    """Redis when ``ICHIDO_REDIS_URL`` is set (shared by all receivers of the store named
    ``namespace``), else in-process."""
    if settings.redis_url:
        from ichido.inbox.redis import RedisSeenCache

        return RedisSeenCache(settings.redis_url, settings.seen_ttl_seconds,
                              prefix=f"ichido:seen:{namespace}:")
    return MemorySeenCache(settings.seen_ttl_seconds, settings.seen_max_entries)
