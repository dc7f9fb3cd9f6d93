"""Storage backends, picked by URL: ``sqlite:///…`` (default) or ``postgresql://…``."""

from __future__ import annotations

import os
import socket
import uuid

from ichido.config import Settings
from ichido.errors import ConfigError
from ichido.inbox.base import Claim, EventRecord, Inbox, SeenCache, Status, Transaction
from ichido.inbox.memory import MemorySeenCache

__all__ = ["Claim", "EventRecord", "Inbox", "SeenCache", "Status", "Transaction",
           "open_inbox", "open_seen_cache"]


def process_shard() -> str:
    """A name for this process's counter rows, so concurrent writers never share a hot row."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def open_inbox(settings: Settings, *, migrate: bool = True) -> Inbox:
    url = settings.database_url
    if url.startswith("sqlite:"):
        from ichido.inbox.sqlite import SqliteInbox

        return SqliteInbox(url, synchronous=settings.sqlite_synchronous, shard=process_shard(),
                           migrate=migrate)
    raise ConfigError(f"unsupported ICHIDO_DATABASE_URL scheme: {url.split(':', 1)[0]!r}")


def open_seen_cache(settings: Settings) -> SeenCache:
    return MemorySeenCache(settings.seen_ttl_seconds, settings.seen_max_entries)
