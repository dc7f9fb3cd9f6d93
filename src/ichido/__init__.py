"""ichido (一度, "once"): receive Stripe webhooks and apply every event's effects exactly once."""

from ichido.app import App
from ichido.config import Settings
from ichido.db.base import Transaction
from ichido.event import Event
from ichido.errors import IchidoError, RetryLater

__all__ = ["App", "Event", "IchidoError", "RetryLater", "Settings", "Transaction"]
__version__ = "0.1.0"
