"""Reading what a thin notification points to, through Stripe's own SDK, at a bounded pace.

``notification.fetch_event()`` is ``GET /v2/core/events/{id}`` and
``notification.fetch_related_object()`` is ``GET related_object.url``; both send the
notification's ``context`` as ``Stripe-Context``. What Stripe answered is kept as it came (the
response's own JSON), so a stored fetch reads the same as a fresh one.

Every thin event costs at least one read, and Stripe allows 25 reads a second in a sandbox (100
live): the reads of a process go at ``ICHIDO_FETCH_RATE`` a second, shared by its worker
threads. They wait for their turn here, outside any transaction. The SDK retries nothing itself
(``max_network_retries=0``): a failed read is a failed attempt of its event, retried by the
worker's backoff like a failed handler (``FetchFailed``).
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable

import orjson
import stripe

from ichido.errors import ReasonCode


RETENTION_SECONDS = 30 * 86400  # Stripe keeps v2 events for 30 days


class FetchFailed(Exception):
    """A read that did not give what was asked. ``code``: ``rate_limited`` (429),
    ``fetch_failed`` (a network error, a 5xx, any other refusal), ``event_expired`` (404 for an
    event past Stripe's 30 days: dead at once); ``retry_after`` from Stripe's header."""

    def __init__(self, code: ReasonCode, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.retry_after = code, retry_after

    @property
    def final(self) -> bool:
        return self.code == "event_expired"


@functools.lru_cache(maxsize=1024)  # types are signed at the door; the bound is cheap
def event_read_needed(event_type: str) -> bool:
    """Whether ``GET /v2/core/events/{id}`` adds anything to a thin notification of this type.
    A ``v1.*`` event carries no ``data`` of its own (its object is the related one, read apart)
    unless the SDK's class for it declares some (``v1.invoice.upcoming``, the billing meter's);
    a ``v2.*`` event, or a type the SDK does not know, may carry anything, so it is read."""
    if not event_type.startswith("v1."):
        return True
    from stripe.events._event_classes import get_v2_event_class

    found = get_v2_event_class(event_type)
    return found is stripe.StripeObject or "data" in getattr(found, "__annotations__", {})


class ReadPace:
    """At most ``rate`` reads a second in this process: each read is given the next free slot
    and sleeps until it (never inside a transaction)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate
        self.clock, self.sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


class Reader:
    """The SDK client (built on first use by ``make_client``: the App's reads it from
    ``STRIPE_API_KEY`` and ``STRIPE_API_BASE``) and the pace of this process's reads."""

    def __init__(self, rate: float, client: stripe.StripeClient | None = None, *,
                 make_client: Callable[[], stripe.StripeClient] | None = None) -> None:
        self.pace = ReadPace(rate)
        self._client = client
        self._make_client = make_client
        self._lock = threading.Lock()
        self.reads = 0  # requests sent, for tests and logs

    def client(self) -> stripe.StripeClient:
        with self._lock:
            if self._client is None:
                if self._make_client is None:
                    raise FetchFailed("fetch_failed", "no Stripe client to read thin events with")
                self._client = self._make_client()
            return self._client

    def api_version(self) -> str:
        """The ``Stripe-Version`` this reader's client sends: the version the objects it fetches
        are rendered in (the SDK's pinned one unless the client was given another)."""
        requestor = getattr(self.client(), "_requestor", None)
        version = getattr(requestor, "stripe_version", None)
        return version if isinstance(version, str) else stripe.api_version

    def notification(self, body: bytes) -> Any:
        """The SDK's typed notification of a stored (verified at the door) thin body."""
        return self.client().parse_event_notification_without_verification(body)

    def event(self, notification: Any, created: int) -> dict[str, Any]:
        """``GET /v2/core/events/{id}``; a 404 past the retention is ``event_expired``."""
        try:
            return self._read(notification.fetch_event)
        except FetchFailed as failed:
            if failed.code == "not_found" and time.time() - created > RETENTION_SECONDS:
                raise FetchFailed("event_expired", f"Stripe no longer keeps event "
                                  f"{notification.id} (older than 30 days)") from None
            if failed.code == "not_found":
                raise FetchFailed("fetch_failed", str(failed).removeprefix("not_found: ")
                                  ) from None
            raise

    def related_object(self, notification: Any) -> dict[str, Any] | None:
        """``GET related_object.url``; None when the notification names no object. An object
        that is gone (404) reads as Stripe's deleted shape, ``{id, object, deleted: true}``."""
        related = getattr(notification, "related_object", None)
        fetch = getattr(notification, "fetch_related_object", None)
        if related is None or fetch is None:
            return None
        try:
            return self._read(fetch)
        except FetchFailed as failed:
            if failed.code != "not_found" or not getattr(related, "id", None):
                raise
            return {"id": related.id, "object": related.type, "deleted": True}

    def object_at(self, url: str, context: str | None, event_id: str) -> dict[str, Any]:
        """``GET url`` as ``fetch_related_object()`` sends it (``Stripe-Context``, the trigger
        header): the object a health alert's ``impact`` names. Gone (404): the deleted shape."""
        client = self.client()

        def fetch() -> Any:
            return client.raw_request("get", url, stripe_context=context,
                                      headers={"Stripe-Request-Trigger": f"event={event_id}"})

        try:
            return self._read(fetch)
        except FetchFailed as failed:
            if failed.code != "not_found":
                raise
            kind = url.removeprefix("/v1/").split("/")[0].removesuffix("s")
            return {"id": url.rstrip("/").rsplit("/", 1)[-1], "object": kind, "deleted": True}

    def _read(self, fetch: Callable[[], Any]) -> dict[str, Any]:
        self.pace.wait()
        self.reads += 1
        try:
            found = fetch()
        except stripe.APIConnectionError as exc:
            raise FetchFailed("fetch_failed", f"network error: {exc.user_message}") from exc
        except stripe.StripeError as exc:
            raise _failure(exc) from exc
        response = getattr(found, "last_response", found)  # raw_request gives the response
        if response is not None and getattr(response, "body", None):
            return orjson.loads(response.body)
        return dict(found.to_dict())


def _failure(exc: stripe.StripeError) -> FetchFailed:
    status = exc.http_status or 0
    message = f"Stripe answered {status or 'an error'}: {exc.user_message or type(exc).__name__}"
    if status == 404:
        return FetchFailed("not_found", message)
    if status == 429:
        return FetchFailed("rate_limited", message, _retry_after(exc.headers))
    return FetchFailed("fetch_failed", message, _retry_after(exc.headers))


def _retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (a number; an HTTP date is left to the backoff)."""
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return None
            return seconds if 0 <= seconds <= 86400 else None
    return None
