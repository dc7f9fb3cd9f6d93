"""Re-fetching an object from the API when a guarded handler applies its event (``refetch=``).

Only for the types that need it (sync-engine's ``revalidateObjectsViaStripeApi``): re-fetching
on every event is what makes dj-stripe hit rate limits (#2127). A fetch runs inside the
handlers' transaction, so it never waits there for its turn: over the budget, or answered 429,
it raises ``RetryLater`` and the worker's own backoff brings the event back later.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Mapping

import stripe

from ichido.errors import RetryLater
from ichido.recovery.settings import RecoverySettings

# object → its collection, where it is not simply the object name plus "s"
PATHS = {"checkout.session": "checkout/sessions", "billing_portal.session":
         "billing_portal/sessions", "subscription_schedule": "subscription_schedules"}


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts of ``burst``; never sleeps."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class StripeFetcher:
    """``fetch(snapshot)``: the object as the API has it now, through the official SDK.

    ``rate``: re-fetches per second this process allows itself (Stripe's documented read limit
    is 100/s in live mode and 25/s in test mode; the default leaves room for everything else).
    """

    def __init__(self, client: stripe.StripeClient, *, rate: float = 10.0, burst: int = 20,
                 account: str | None = None) -> None:
        self.client = client
        self.bucket = TokenBucket(rate, burst)
        self.account = account

    @classmethod
    def from_settings(cls, settings: RecoverySettings | None = None,
                      **kwargs: Any) -> "StripeFetcher":
        return cls(api_client(settings or RecoverySettings.from_env()), **kwargs)

    def __call__(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        kind, object_id = str(snapshot.get("object")), str(snapshot.get("id"))
        if not self.bucket.take():
            raise RetryLater(f"re-fetch budget spent; {kind} {object_id} waits its turn",
                             code="refetch_budget")
        path = f"/v1/{PATHS.get(kind, kind + 's')}/{object_id}"
        options = {"stripe_account": self.account} if self.account else {}
        try:
            response = self.client.raw_request("get", path, **options)
        except stripe.RateLimitError as exc:
            raise RetryLater(f"Stripe rate limit while re-fetching {object_id}: {exc}",
                             code="rate_limited") from exc
        return self.client.deserialize(response, api_mode="V1").to_dict()


def api_client(settings: RecoverySettings) -> stripe.StripeClient:
    """The SDK client for ``STRIPE_API_KEY`` at ``STRIPE_API_BASE`` (the emulator), as the shop
    builds it; retries connection errors and 5xx on its own, never 429 (we back off ourselves)."""
    return stripe.StripeClient(
        settings.require_api_key(), max_network_retries=2,
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None)
