"""Events Stripe failed to generate, recovered from its health alert.

"In very rare cases, Stripe can fail to generate the Event object"
(docs.stripe.com/webhooks/handle-irrecoverable-events): no snapshot event, no thin event, nothing
to list or resend. Later Stripe sends the thin ``v2.core.health.event_generation_failure.resolved``
whose ``data.impact`` names the change: ``event_type`` (the snapshot type) and
``related_object {id, type, url}``. ichido treats that alert as the missing event: the fetch
stage reads the alert and then the object at ``impact.related_object.url`` (with the alert's
``context``), and the worker hands it to the handlers of ``impact.event_type`` as an ``Event``
with ``shape="recovery"`` and ``recovered_from`` = the alert's id. The alert's id is the change
key (``twins``), so each alert applies once however often it arrives; and the operator hears of
every one (``recovery.alerts``, kind ``event_generation_failure``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HEALTH_RESOLVED = "v2.core.health.event_generation_failure.resolved"


@dataclass(frozen=True)
class Impact:
    """What an alert says was never generated."""

    alert_id: str
    event_type: str  # the snapshot's name (a ``v1.`` name is read as its snapshot's)
    object_id: str | None
    object_url: str | None


def is_alert(event_type: str) -> bool:
    return event_type == HEALTH_RESOLVED


def impact(event: dict[str, Any]) -> Impact | None:
    """The impact of a fetched alert (``GET /v2/core/events/{id}``); None when it names no
    event type (nothing to hand to handlers, though the operator still hears of it)."""
    data = event.get("data")
    found = data.get("impact") if isinstance(data, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("event_type"), str):
        return None
    related = found.get("related_object")
    related = related if isinstance(related, dict) else {}
    url, object_id = related.get("url"), related.get("id")
    alert_id = data.get("alert_id") if isinstance(data, dict) else None
    return Impact(str(alert_id or event.get("id")), found["event_type"].removeprefix("v1."),
                  object_id if isinstance(object_id, str) else None,
                  url if isinstance(url, str) and url.startswith("/v1/") else None)


def describe(event_id: str, found: Impact | None, handled: bool) -> str:
    """The operator's line: which change Stripe never sent an event for."""
    if found is None:
        return f"Stripe failed to generate an event (alert {_shown(event_id)} names no event type)"
    kind = _shown(found.event_type)
    done = (f"ichido handed the object as it is now to the {kind} handlers as a recovery"
            if handled else f"no handler takes {kind}: nothing was applied")
    return (f"Stripe failed to generate a {kind} event for {_shown(found.object_id or '?')}"
            f" (alert {_shown(found.alert_id)}); {done}")


def _shown(value: str) -> str:
    """Stripe's text in an operator's line: as it is when printable, else its repr (never a
    forged line)."""
    value = value[:80]
    return value if value.isprintable() else repr(value)
