"""The receiver on Lambda, behind a Function URL or an API Gateway HTTP API (payload 2.0).

It is ``ichido serve``'s own receiver (same checks, same reason codes, same 4xx) run through
mangum, which turns the invocation into one ASGI request: headers lower-cased, ``body``
base64-decoded when ``isBase64Encoded``, so the signature is checked over the exact bytes
Stripe sent. The durable write is the queue: the 200 goes out only after SQS (or, on the
Streams layout, DynamoDB's conditional put) has the event (I1, docs/invariants.md).

One invocation is one request, so the group commit never groups anything: each delivery pays
its own round trips (one SQS SendMessage, plus a Redis look-up and learn with a seen tier).
Lambda scales by running more invocations, not by batching them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import orjson
from mangum import Mangum

from ichido.aws.settings import AwsSettings
from ichido.config import Settings
from ichido.errors import error_json
from ichido.group_commit import DurableWrite, GroupCommit
from ichido.seen.base import SeenCache
from ichido.receiver import HTTP_STATUS, WebhookReceiver

log = logging.getLogger("ichido.aws.receiver")

class LambdaReceiver:
    """The ASGI app mangum runs: every POST, whatever its path, is a webhook delivery (the
    Function URL itself is the endpoint); anything else is 405."""

    def __init__(self, settings: Settings, store: DurableWrite, seen: SeenCache) -> None:
        settings.require_secret()
        self._group = GroupCommit(store, seen)
        self.receiver = WebhookReceiver(settings, self._started)

    async def _started(self) -> GroupCommit:
        return self._group

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            body = orjson.dumps(error_json("method_not_allowed", "POST a Stripe webhook here"))
            await send({"type": "http.response.start", "status": HTTP_STATUS["method_not_allowed"],
                        "headers": [(b"content-type", b"application/json"), (b"allow", b"POST")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.receiver(scope, receive, send)


LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def lambda_handler(settings: Settings, store: DurableWrite, seen: SeenCache) -> LambdaHandler:
    """A Lambda handler ``(event, context) -> response`` for one execution environment.

    mangum runs the request on the calling thread's event loop: Lambda calls from one thread,
    the local gateway from several, so a thread without a loop gets its own."""
    # an ASGI app, typed with dicts where mangum's protocol says MutableMapping
    adapter = Mangum(LambdaReceiver(settings, store, seen),  # type: ignore[arg-type]  # see above
                     lifespan="off")

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            asyncio.get_event_loop()
        except RuntimeError:
            asyncio.set_event_loop(asyncio.new_event_loop())
        return adapter(event, context)

    return handle


def from_env() -> LambdaHandler:
    """Build the receiver from the function's environment (see deploy/template.yaml)."""
    from ichido.aws import stores

    aws = AwsSettings.from_env()
    settings = stores.settings_from_env(aws)
    store, namespace = stores.receiver_store(settings, aws)
    return lambda_handler(settings, store, stores.seen_tier(settings, namespace))


_handler: LambdaHandler | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The function's entry point: ``ichido.aws.receiver.handler``."""
    global _handler
    if _handler is None:
        _handler = from_env()
    return _handler(event, context)
