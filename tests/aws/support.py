"""The SQS layout assembled from its real parts, for the tests: receiver handler, queue,
worker handler, and the local poller that stands in for Lambda's event source mapping."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable

from ichido.aws.ledger import SqlLedger
from ichido.aws.receiver import QueueInbox, lambda_handler
from ichido.aws.runner import SqsPoller
from ichido.aws.worker import EventApplier, SqsWorker
from ichido.config import Settings
from ichido.handlers import HandlerRegistry
from ichido.inbox import open_seen_cache, process_shard
from ichido.inbox.memory import MemorySeenCache
from ichido.queue.sqs import SqsQueue
from tests.support import SECRET, open_store, signed_headers


def function_url_event(body: bytes, headers: dict[str, str] | None = None, *,
                       base64_body: bool = False, method: str = "POST",
                       path: str = "/") -> dict[str, Any]:
    """A Lambda Function URL invocation (payload 2.0), as AWS builds it: headers lower-cased,
    the body as text, or base64 with ``isBase64Encoded``."""
    headers = signed_headers(body) if headers is None else headers
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"accountId": "anonymous", "apiId": "ichido", "domainName":
                           "ichido.lambda-url.us-east-1.on.aws", "http": {
                               "method": method, "path": path, "protocol": "HTTP/1.1",
                               "sourceIp": "127.0.0.1", "userAgent": "Stripe/1.0"},
                           "requestId": "r", "routeKey": "$default", "stage": "$default",
                           "time": "01/Dec/2026:00:00:00 +0000", "timeEpoch": 0},
        "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8"),
        "isBase64Encoded": base64_body,
    }


@dataclass
class SqsLayout:
    database_url: str
    queue_url: str
    dlq_url: str
    max_receive_count: int = 3
    redis_url: str | None = None
    handlers: HandlerRegistry = field(default_factory=HandlerRegistry)

    def __post_init__(self) -> None:
        self.settings = Settings(database_url=self.database_url, webhook_secrets=(SECRET,),
                                 redis_url=self.redis_url)
        self.inbox = open_store(self.database_url)
        self.ledger = SqlLedger(self.inbox, process_shard())
        self.queue = SqsQueue(self.queue_url, dlq_url=self.dlq_url)
        self.worker = SqsWorker(EventApplier(self.handlers, self.ledger),
                                max_receive_count=self.max_receive_count,
                                fifo=self.queue.fifo)
        self.poller = SqsPoller(self.queue_url, self.worker.handle, failed_visibility=0)

    def receiver(self, seen: Any = None) -> Callable[[dict, Any], dict]:
        """One Lambda execution environment of the receiver (its own loop, its own seen tier)."""
        if seen is None:
            seen = (open_seen_cache(self.settings, self.queue_url.rsplit("/", 1)[-1])
                    if self.redis_url else MemorySeenCache(3600, 1000))
        return lambda_handler(self.settings, QueueInbox(self.queue, self.ledger.count), seen)

    def close(self) -> None:
        self.inbox.close()
