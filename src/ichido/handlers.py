"""The handler registry behind ``@app.on("payment_intent.succeeded")``."""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from typing import TYPE_CHECKING, Callable

from ichido.event import Event
from ichido.db.base import Transaction

if TYPE_CHECKING:
    from ichido.guard import Fetch, StaleGuard

Handler = Callable[[Event, Transaction], None]


class HandlerRegistry:
    """Event type → handlers, in registration order. ``"*"`` receives every type, and a pattern
    such as ``"customer.subscription.*"`` every type it matches (``fnmatch`` rules).

    A type with no handler is marked ``ignored`` by the worker: stored, counted, done. Thin
    events are matched by their ``v1.`` name and by their snapshot's name (``for_type``).
    Handlers registered with ``latest_only=True`` skip events older than what was already
    applied to their object (``ichido.guard``); an event that only such handlers
    wanted, and that is older, is marked ``stale``.
    """

    def __init__(self) -> None:
        self._by_type: dict[str, list[Handler]] = defaultdict(list)
        self._latest_only: set[Handler] = set()
        self._refetch: dict[Handler, "Fetch"] = {}
        self._resolved: dict[str, list[Handler]] = {}
        self._guard: StaleGuard | None = None

    def on(self, *event_types: str, latest_only: bool = False,
           refetch: "Fetch | None" = None) -> Callable[[Handler], Handler]:
        """``refetch``: a callable (``recovery.fetch.StripeFetcher``) that gives the object as
        the API has it now; guarded handlers then get that instead of the event's snapshot."""
        if not event_types:
            raise TypeError('name at least one event type, e.g. @app.on("charge.refunded")')

        def register(handler: Handler) -> Handler:
            for event_type in event_types:
                self.add(event_type, handler, latest_only=latest_only or refetch is not None,
                         refetch=refetch)
            return handler

        return register

    def add(self, event_type: str, handler: Handler, *, latest_only: bool = False,
            refetch: "Fetch | None" = None) -> None:
        if handler not in self._by_type[event_type]:
            self._by_type[event_type].append(handler)
        if latest_only:
            self._latest_only.add(handler)
        if refetch is not None:
            self._refetch[handler] = refetch
        self._resolved.clear()

    def for_type(self, event_type: str) -> list[Handler]:
        """The handlers of ``event_type``. A thin ``v1.`` type is also its snapshot's type:
        ``payment_intent.succeeded`` handlers (and patterns) get ``v1.payment_intent.succeeded``
        too, after those registered for the ``v1.`` name itself."""
        found = self._resolved.get(event_type)
        if found is None:
            found = []
            names = [event_type]
            if event_type.startswith("v1."):
                names.append(event_type.removeprefix("v1."))
            for name in names:
                found.extend(h for h in self._by_type.get(name, ()) if h not in found)
                for pattern, handlers in self._by_type.items():
                    if pattern != name and fnmatch.fnmatchcase(name, pattern):
                        found.extend(h for h in handlers if h not in found)
            self._resolved[event_type] = found
        return found

    def admit(self, event: Event, tx: Transaction,
              handlers: list[Handler]) -> list[tuple[Handler, Event]]:
        """The handlers that get ``event``, each with the event it gets: ``latest_only`` ones
        drop out when the event is stale; ``refetch`` ones get the re-fetched object."""
        guarded = [h for h in handlers if h in self._latest_only]
        if not guarded:
            return [(h, event) for h in handlers]
        from ichido.guard import StaleGuard, with_object

        if self._guard is None:
            self._guard = StaleGuard()
        if not self._guard.admit(tx, event):
            return [(h, event) for h in handlers if h not in self._latest_only]
        fresh: dict[int, Event] = {}
        plan = []
        for handler in handlers:
            fetch = self._refetch.get(handler)
            if fetch is not None and event.shape == "snapshot":  # a thin event's is fresh
                if id(fetch) not in fresh:
                    fresh[id(fetch)] = with_object(event, fetch(event.object))
                plan.append((handler, fresh[id(fetch)]))
            else:
                plan.append((handler, event))
        return plan

    def types(self) -> list[str]:
        return sorted(t for t, handlers in self._by_type.items() if handlers)
