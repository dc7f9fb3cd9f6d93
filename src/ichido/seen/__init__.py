"""The seen tier, picked by ``ICHIDO_REDIS_URL``: Redis when set, else a map in this process."""

from __future__ import annotations

from ichido.config import Settings
from ichido.extras import require
from ichido.seen.base import SeenCache

__all__ = ["SeenCache", "open_seen"]


def open_seen(settings: Settings, namespace: str) -> SeenCache:
    """Redis when ``ICHIDO_REDIS_URL`` is set (shared by all receivers of the store named
    ``namespace``), else in-process."""
    if settings.redis_url:
        require("redis", needed_by="ICHIDO_REDIS_URL is set")
        from ichido.seen.redis import RedisSeenCache

        return RedisSeenCache(settings.redis_url, settings.seen_ttl_seconds,
                              prefix=f"ichido:seen:{namespace}:")
    from ichido.seen.memory import MemorySeenCache

    return MemorySeenCache(settings.seen_ttl_seconds, settings.seen_max_entries)
