"""Webhook endpoints as Stripe keeps them, plus what a test does to them, and the retry plan.

An endpoint is *disabled* as in Stripe's Dashboard (``status: disabled``): new events are not
sent to it and do not count in their ``pending_webhooks``; a retry that comes due while it is
disabled is dropped, and none follow, while one re-enabled before its retry keeps retrying
(docs.stripe.com/webhooks, "Retry behavior"). An endpoint is *down* when the receiver cannot be
reached: Stripe still tries, every attempt fails at once (a refused connection), and the
backoff runs on until Stripe gives up. Both are emulator controls, not Stripe API.

Retries (docs.stripe.com/webhooks): "exponential back off" for up to three days in live mode,
three times over a few hours in a sandbox. Stripe publishes neither the intervals nor the
timeout, so ``LIVE_RETRY_DELAYS`` doubles from one minute, capped at 12 h, ending 72 h after the
first attempt (16 attempts in all). A retry is due on whichever comes first: the emulator
clock passing it (``Emulator.advance``) or real time × ``time_scale``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def _live_schedule(first: int = 60, cap: int = 12 * 3600, total: int = 72 * 3600) -> tuple[
        int, ...]:
    delays: list[int] = []
    while sum(delays) < total:
        delays.append(min(first * 2 ** len(delays), cap, total - sum(delays)))
    return tuple(delays)


LIVE_RETRY_DELAYS = _live_schedule()
TEST_RETRY_DELAYS = (3600, 2 * 3600, 3 * 3600)  # "three times over a few hours"
RETRY_HORIZON = sum(LIVE_RETRY_DELAYS)  # 72 h


PING = "v2.core.event_destination.ping"


def is_thin(event_type: str) -> bool:
    """Thin event types carry their API namespace (``v1.payment_intent.succeeded``); snapshot
    types never do (``payment_intent.succeeded``)."""
    return event_type.startswith(("v1.", "v2."))


@dataclass(frozen=True)
class Endpoint:
    """``api_version``: the version its events are rendered in (None: the account's default,
    as a Stripe endpoint created without one). ``enabled_events``: ``*`` or event types.
    ``thin``: an event destination with ``event_payload: thin`` (see ``thin_events``): it gets
    thin events (``v1.…``, ``v2.…``) and no snapshot ones; every other endpoint the reverse."""

    url: str
    secrets: tuple[str, ...]
    api_version: str | None = None
    enabled_events: tuple[str, ...] = ("*",)
    description: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    thin: bool = False


@dataclass
class EndpointStats:
    succeeded: int = 0  # 2xx answers
    failed: int = 0  # other answers, timeouts, refused connections, forced failures
    gave_up: int = 0  # events never delivered: every retry failed, or dropped while disabled


@dataclass
class EndpointState:
    """One endpoint's configuration, switches and counts; ``id`` is Stripe-shaped (``we_…``)."""

    id: str
    endpoint: Endpoint
    enabled: bool = True
    reachable: bool = True
    stats: EndpointStats = field(default_factory=EndpointStats)

    @property
    def url(self) -> str:
        return self.endpoint.url

    def wants(self, event_type: str) -> bool:
        if self.endpoint.thin != is_thin(event_type):
            return False
        if event_type == PING:
            return self.enabled  # sent only to the destination pinged, whatever it takes
        return self.enabled and any(kind in ("*", event_type)
                                    for kind in self.endpoint.enabled_events)

    def stripe_object(self, created: int) -> dict[str, Any]:
        """As ``GET /v1/webhook_endpoints`` shows it (``api_version`` null: the account's)."""
        return {"id": self.id, "object": "webhook_endpoint",
                "api_version": self.endpoint.api_version, "application": None,
                "created": created, "description": self.endpoint.description,
                "enabled_events": list(self.endpoint.enabled_events), "livemode": False,
                "metadata": dict(self.endpoint.metadata),
                "status": "enabled" if self.enabled else "disabled", "url": self.url}

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "object": "emulator.webhook_endpoint", "url": self.url,
                "status": "enabled" if self.enabled else "disabled",
                "reachable": self.reachable, **asdict(self.stats)}


class EndpointNotFound(LookupError):
    pass


def states(endpoints: list[Endpoint]) -> list[EndpointState]:
    return [EndpointState(f"we_emulator{i}", endpoint) for i, endpoint in enumerate(endpoints)]


def find(all_states: list[EndpointState], ref: str) -> EndpointState:
    """By id (``we_emulator0``) or by URL."""
    for state in all_states:
        if ref in (state.id, state.url):
            return state
    raise EndpointNotFound(ref)
