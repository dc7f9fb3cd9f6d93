"""The handler registry behind ``@app.on("payment_intent.succeeded")``."""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

from ichido.event import Event
from ichido.db.base import Transaction

Handler = Callable[[Event, Transaction], None]


class HandlerRegistry:
    """Event type → handlers, in registration order. ``"*"`` receives every type.

    A type with no handler is marked ``ignored`` by the worker: stored, counted, done.
    """

    def __init__(self) -> None:
        self._by_type: dict[str, list[Handler]] = defaultdict(list)

    def on(self, *event_types: str) -> Callable[[Handler], Handler]:
        if not event_types:
            raise TypeError('name at least one event type, e.g. @app.on("charge.refunded")')

        def register(handler: Handler) -> Handler:
            for event_type in event_types:
                self.add(event_type, handler)
            return handler

        return register

    def add(self, event_type: str, handler: Handler) -> None:
        if handler not in self._by_type[event_type]:
            self._by_type[event_type].append(handler)

    def for_type(self, event_type: str) -> list[Handler]:
        return [*self._by_type.get(event_type, ()), *self._by_type.get("*", ())]

    def types(self) -> list[str]:
        return sorted(t for t, handlers in self._by_type.items() if handlers)
