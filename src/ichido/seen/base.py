"""The seen tier's one interface: a fast hint in front of the inbox, never the truth (I3)."""

from __future__ import annotations

import abc
from typing import Sequence


class SeenCache(abc.ABC):
    """The fast tier: a hint holding ids that are already durable. Losing it loses nothing (I3)."""

    #: whether other processes (of this store, or of a copy of it) fill it too: its hits are
    #: then checked against the store where that is cheap (``Inbox.durable_among``)
    shared = False

    async def seen_async(self, event_ids: Sequence[str], *,
                         learn: Sequence[str] = ()) -> set[str]:
        """``seen`` for the event loop, after learning ``learn`` (ids already durable, I3): a
        remote tier does both in one round trip. A tier in memory just answers."""
        if learn:
            self.add(learn)
        return self.seen(event_ids)

    async def add_async(self, event_ids: Sequence[str]) -> None:
        self.add(event_ids)

    async def aclose(self) -> None:
        """Release what the async methods hold on the running event loop."""

    @abc.abstractmethod
    def seen(self, event_ids: Sequence[str]) -> set[str]:
        """The subset of ``event_ids`` remembered as durable."""

    @abc.abstractmethod
    def add(self, event_ids: Sequence[str]) -> None:
        """Remember ids; call only after they are durable."""

    @abc.abstractmethod
    def clear(self) -> None: ...

    def close(self) -> None:
        return None
