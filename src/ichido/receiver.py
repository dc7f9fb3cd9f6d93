"""The webhook endpoint: verify, dedupe, store durably, answer. Nothing else happens here.

Written as a plain ASGI callable: this is the hot path, and a framework's request object costs
more than everything else it does. Handlers never run here (a slow handler would make Stripe
time out and send more duplicates); the worker runs them.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import orjson

from ichido import signature
from ichido.config import Settings
from ichido.errors import (
    IchidoError,
    PayloadTooLarge,
    ReasonCode,
    RejectedDelivery,
    SignatureError,
    UnsupportedMediaType,
)
from ichido.event import Delivery, parse_delivery
from ichido.group_commit import GroupCommit, Outcome
from ichido.metrics import METRICS
from ichido.sources import SourceAllowlist

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The HTTP status of each reason code (ichido.errors.REASONS). Any other refused delivery is a
# 400; anything else a 500. 503 says "retry": Stripe will.
HTTP_STATUS: dict[ReasonCode, int] = {
    "source_not_allowed": 403,
    "method_not_allowed": 405,
    "too_large": 413,
    "unsupported_media_type": 415,
    "storage_unavailable": 503,
    "shutting_down": 503,
}


def http_status(exc: IchidoError) -> int:
    return HTTP_STATUS.get(exc.code, 400 if isinstance(exc, RejectedDelivery) else 500)


class WebhookReceiver:
    """ASGI app for ``POST /webhooks/stripe``. ``group`` gives the started store lazily, so the
    receiver also works when mounted in an app that never runs ichido's lifespan.

    Its steps are also methods of their own (``check_head``, ``check_body``, ``refused``,
    ``answer``) for ``ichido serve``'s fast path (ichido.serving), which runs them in the same
    order from the connection's parser callbacks; ``ready`` gives that path the group commit
    once it is started, None before."""

    def __init__(self, settings: Settings, group: Callable[[], Awaitable[GroupCommit]],
                 ready: Callable[[], GroupCommit | None] = lambda: None) -> None:
        self.settings = settings
        self.group = group
        self.ready = ready
        self.sources = (SourceAllowlist(settings.allowed_sources_file)
                        if settings.allowed_sources_file else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer: dict[str, Any]  # what was stored, or the error
        try:
            status, answer = 200, await self.handle(scope, receive)
        except IchidoError as exc:
            status, answer = self.refused(exc)
        body = orjson.dumps(answer)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def handle(self, scope: Scope, receive: Receive) -> dict[str, str]:
        client = scope.get("client") if self.sources is not None else None
        header = self.check_head(client[0] if client else None, dict(scope["headers"]))
        body = await read_body(receive, self.settings.max_body_bytes)
        delivery = self.check_body(body, header)
        return answer(delivery, await (await self.group()).submit(delivery))

    def check_head(self, host: str | None, headers: dict[bytes, bytes]) -> bytes:
        """What the sender and the headers alone refuse (``host``: the sender's address, read
        only with an allowlist); returns the ``Stripe-Signature`` header."""
        if self.sources is not None and not self.sources.allows(host):
            raise RejectedDelivery("the sender's address is not among the allowed sources",
                                   code="source_not_allowed")
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json" and not content_type.endswith(b"+json"):
            raise UnsupportedMediaType(f"content type {content_type.decode('latin-1')!r} is not JSON")
        limit = self.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"body of {int(declared)} bytes exceeds the {limit}-byte limit")
        header = headers.get(b"stripe-signature")
        if not header:
            raise SignatureError("no Stripe-Signature header", code="missing_signature")
        return header

    def check_body(self, body: bytes, header: bytes) -> Delivery:
        """The signature over the raw body, then the event in it."""
        signature.verify(body, header.decode("latin-1"), self.settings.webhook_secrets,
                         tolerance=self.settings.tolerance_seconds)
        return parse_delivery(body)

    @staticmethod
    def refused(exc: IchidoError) -> tuple[int, dict[str, Any]]:
        """The status and body of a refusal, counted by its reason code."""
        METRICS.rejected.labels(exc.code).inc()
        return http_status(exc), exc.to_json()


def answer(delivery: Delivery, outcome: Outcome) -> dict[str, str]:
    """The body of the 200: what was stored, or which tier knew it already."""
    if outcome is Outcome.ACCEPTED:
        return {"id": delivery.id, "status": "accepted"}
    return {"id": delivery.id, "status": "duplicate", "tier": outcome.value}


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read the request body, stopping as soon as it passes ``limit`` (chunked bodies too)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RejectedDelivery("client went away", code="client_disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
