"""ichido (一度, "once"): receive Stripe webhooks and apply every event's effects exactly once.

This module and the others docs/api.md lists are the public API; the rest is internal."""

from ichido.app import App
from ichido.config import Settings
from ichido.db.base import Transaction
from ichido.event import Event
from ichido.errors import ConfigError, IchidoError, NotFound, RetryLater
from ichido.inbox.base import EventFilter
from ichido.loops import poll

__all__ = ["App", "ConfigError", "Event", "EventFilter", "IchidoError", "NotFound", "RetryLater",
           "Settings", "Transaction", "poll"]
__version__ = "0.1.0"
