"""Event destinations (``/v2/core/event_destinations``): where Stripe sends snapshot or thin events.

A destination of ``type: webhook_endpoint`` is an endpoint of the webhook sender (its id is the
destination's ``ed_test_61…``), so retries, chaos, ``/_emulator/webhook_endpoints/{id}/down``
and the rest apply to it as to a v1 endpoint. ``event_payload: thin`` gets thin events
(``enabled_events`` names thin types: ``v1.payment_intent.succeeded``); ``snapshot`` gets the
snapshot events (``payment_intent.succeeded``) rendered in ``snapshot_api_version`` (default:
the account's). Each has its own ``whsec_`` secret, returned only by create with
``include: ["webhook_endpoint.signing_secret"]``; ``webhook_endpoint.url`` is redacted (null)
unless ``include`` asks for it. The cloud types (``amazon_eventbridge``, ``azure_event_grid``)
are refused: this local Stripe delivers over HTTP only.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ichido.emulator import v2_lists, versions
from ichido.emulator.endpoints import Endpoint, EndpointState, is_thin
from ichido.emulator.errors import StripeError, invalid, missing_param, unknown_param
from ichido.emulator.objects import new_id
from ichido.emulator.thin_events import ThinEvents, rfc3339, thin_id
from ichido.emulator.webhooks import WebhookSender

CREATE = {"name", "type", "event_payload", "enabled_events", "description", "metadata",
          "events_from", "snapshot_api_version", "webhook_endpoint", "include",
          "amazon_eventbridge", "azure_event_grid"}
UPDATE = {"name", "description", "enabled_events", "metadata", "webhook_endpoint", "include"}
SECRET, URL = "webhook_endpoint.signing_secret", "webhook_endpoint.url"
PATH = "/v2/core/event_destinations"


def not_found(object_id: str) -> StripeError:
    return StripeError(404, "invalid_request_error",
                       f"No such event destination: '{object_id[:80]}'", code="not_found")


class EventDestinations:
    def __init__(self, thin: ThinEvents, sender: WebhookSender) -> None:
        self.thin, self.sender, self.store = thin, sender, thin.store
        self.records: dict[str, dict[str, Any]] = {}  # as shown, url and secret unredacted
        self.states: dict[str, EndpointState] = {}
        self.order: dict[str, tuple[int, int]] = {}
        self._seq = 0

    def _now(self) -> tuple[int, str]:
        millis = int((time.time() + self.store.clock.offset) * 1000)
        return millis, rfc3339(millis)

    # -- routes ------------------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        _known(body, CREATE)
        name = _text(body, "name", required=True)
        kind = _choice(body, "type", ("webhook_endpoint", "amazon_eventbridge",
                                      "azure_event_grid"))
        if kind != "webhook_endpoint":
            raise invalid(f"This local Stripe delivers to webhook endpoints only, not {kind}.",
                          param="type", code="emulator_destination_type_unsupported")
        payload = _choice(body, "event_payload", ("snapshot", "thin"))
        thin = payload == "thin"
        enabled = _events(body, thin, required=True)
        sources = _strings(body, "events_from") or ["@self"]
        if sources != ["@self"]:
            raise invalid("This local Stripe has one account: events_from is [\"@self\"].",
                          param="events_from", code="parameter_invalid")
        version = _text(body, "snapshot_api_version")
        if version is not None and thin:
            raise invalid("snapshot_api_version is for snapshot destinations only.",
                          param="snapshot_api_version", code="parameter_invalid")
        if version is not None:
            versions.parse(version)  # an unknown or unrendered version: a 400
        url = _url(body, required=True)
        include = _include(body, (SECRET, URL))
        millis, created = self._now()
        destination_id, secret = thin_id("ed_test_61"), new_id("whsec", 32)
        record = {
            "id": destination_id, "object": "v2.core.event_destination", "created": created,
            "description": _text(body, "description") or "", "enabled_events": enabled,
            "event_payload": payload, "events_from": sources, "livemode": False,
            "metadata": _metadata(body), "name": name,
            "snapshot_api_version": None if thin else version or self.store.api_version,
            "type": kind, "updated": created,
            "webhook_endpoint": {"signing_secret": secret, "url": url}}
        state = EndpointState(destination_id, Endpoint(
            url, (secret,), api_version=version, enabled_events=tuple(enabled), thin=thin,
            description=record["description"]))
        self.sender.endpoints.append(state)
        self.records[destination_id], self.states[destination_id] = record, state
        self._seq += 1
        self.order[destination_id] = (millis, self._seq)
        return self._shown(destination_id, include)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        listed, _ = v2_lists.opened(params)
        _known(listed, {"include", "limit"})
        include = _include(listed, (URL,))
        ids = sorted(self.records, key=lambda i: self.order[i], reverse=True)
        found = v2_lists.page([{"id": i} for i in ids], params, PATH,
                              lambda item: self.order[item["id"]])
        found["data"] = [self._shown(item["id"], include) for item in found["data"]]
        return found

    def retrieve(self, destination_id: str, params: dict[str, Any]) -> dict[str, Any]:
        _known(params, {"include"})
        self._get(destination_id)
        return self._shown(destination_id, _include(params, (URL,)))

    def update(self, destination_id: str, body: dict[str, Any]) -> dict[str, Any]:
        _known(body, UPDATE)
        record, state = self._get(destination_id), self.states[destination_id]
        include = _include(body, (URL,))
        change: dict[str, Any] = {}
        if "name" in body:
            record["name"] = _text(body, "name", required=True)
        if "description" in body:
            record["description"] = change["description"] = _text(body, "description") or ""
        if "enabled_events" in body:
            record["enabled_events"] = _events(body, state.endpoint.thin, required=True)
            change["enabled_events"] = tuple(record["enabled_events"])
        if "webhook_endpoint" in body:
            record["webhook_endpoint"]["url"] = change["url"] = _url(body, required=True)
        if "metadata" in body:
            merged = {**record["metadata"], **_metadata(body, nulls=True)}
            record["metadata"] = {k: v for k, v in merged.items() if v is not None}
        state.endpoint = dataclasses.replace(state.endpoint, **change)
        record["updated"] = self._now()[1]
        return self._shown(destination_id, include)

    def delete(self, destination_id: str, params: dict[str, Any]) -> dict[str, Any]:
        _known(params, set())
        self._get(destination_id)
        state = self.states.pop(destination_id)
        state.enabled = False  # its retries due from now on are dropped
        self.sender.endpoints.remove(state)
        del self.records[destination_id], self.order[destination_id]
        return {"id": destination_id, "object": "v2.core.event_destination", "deleted": True}

    def switch(self, enabled: bool) -> Any:
        def handler(destination_id: str, body: dict[str, Any]) -> dict[str, Any]:
            _known(body, set())
            self._get(destination_id)
            self.states[destination_id].enabled = enabled
            self.records[destination_id]["updated"] = self._now()[1]
            return self._shown(destination_id, ())
        return handler

    def ping(self, destination_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Sends ``v2.core.event_destination.ping`` to this destination; answers the event."""
        _known(body, set())
        self._get(destination_id)
        return self.thin.ping(self.records[destination_id], self.states[destination_id])

    # -- showing -----------------------------------------------------------------------------
    def _get(self, destination_id: str) -> dict[str, Any]:
        record = self.records.get(destination_id)
        if record is None:
            raise not_found(destination_id)
        return record

    def _shown(self, destination_id: str, include: tuple[str, ...] | list[str]
               ) -> dict[str, Any]:
        record, state = self.records[destination_id], self.states[destination_id]
        hook = record["webhook_endpoint"]
        return {**record, "enabled_events": list(record["enabled_events"]),
                "metadata": dict(record["metadata"]),
                "status": "enabled" if state.enabled else "disabled",
                "status_details": None if state.enabled else {"disabled": {"reason": "user"}},
                "webhook_endpoint": {
                    "signing_secret": hook["signing_secret"] if SECRET in include else None,
                    "url": hook["url"] if URL in include else None}}


# -- reading a JSON body -------------------------------------------------------------------
def _known(body: dict[str, Any], allowed: set[str]) -> None:
    for name in body:
        if name not in allowed:
            raise unknown_param(name)


def _wrong(param: str, wanted: str) -> StripeError:
    return invalid(f"{param} must be {wanted}.", param=param, code="parameter_invalid")


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise missing_param(name)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _wrong(name, "a non-empty string" if required else "a string")
    return value


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = _text(body, name, required=True)
    if value not in allowed:
        raise _wrong(name, "one of " + ", ".join(allowed))
    return str(value)


def _strings(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _wrong(name, "a list of strings")
    return list(value)


def _events(body: dict[str, Any], thin: bool, *, required: bool) -> list[str]:
    kinds = _strings(body, "enabled_events")
    if not kinds and required:
        raise missing_param("enabled_events")
    for kind in kinds:
        if kind != "*" and is_thin(kind) != thin:
            wanted = "thin event types (v1.payment_intent.succeeded)" if thin else \
                "snapshot event types (payment_intent.succeeded)"
            raise invalid(f"A destination with event_payload {'thin' if thin else 'snapshot'} "
                          f"takes {wanted}; got {kind[:80]}.", param="enabled_events",
                          code="parameter_invalid")
    return kinds


def _url(body: dict[str, Any], *, required: bool) -> str:
    hook = body.get("webhook_endpoint")
    if hook is None and required:
        raise missing_param("webhook_endpoint")
    if not isinstance(hook, dict):
        raise _wrong("webhook_endpoint", "an object with url")
    _known(hook, {"url"})
    url = _text(hook, "url", required=True)
    if not url.startswith(("http://", "https://")):
        raise _wrong("webhook_endpoint.url", "an http:// or https:// URL")
    return str(url)


def _include(body: dict[str, Any], allowed: tuple[str, ...]) -> list[str]:
    include = _strings(body, "include")
    for item in include:
        if item not in allowed:
            raise _wrong("include", "a list of " + ", ".join(allowed))
    return include


def _metadata(body: dict[str, Any], *, nulls: bool = False) -> dict[str, Any]:
    value = body.get("metadata") or {}
    if not isinstance(value, dict) or not all(
            isinstance(v, str) or (nulls and v is None) for v in value.values()):
        raise _wrong("metadata", "an object of strings")
    return dict(value)
