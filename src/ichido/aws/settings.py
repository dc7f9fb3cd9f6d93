"""The AWS layout's settings, read once per cold start from the environment.

The core settings (``ICHIDO_DATABASE_URL``, ``STRIPE_WEBHOOK_SECRET``, ``ICHIDO_REDIS_URL`` …)
stay in ``ichido.config``; these name the AWS resources that only this layout has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from ichido.errors import ConfigError

LAYOUTS = ("sqs", "streams")


@dataclass(frozen=True)
class AwsSettings:
    """``queue_url``: the SQS queue the receiver sends to (``ICHIDO_QUEUE_URL``, the queue's
    https URL as SQS gives it); ``dlq_url``: its dead-letter queue, for ``ichido dlq``;
    ``max_receive_count``: the redrive policy's, so the worker knows an attempt is the last."""

    layout: str = "sqs"
    queue_url: str | None = None
    dlq_url: str | None = None
    fifo: bool = False
    max_receive_count: int = 3
    # Where the webhook secret lives when it is not in STRIPE_WEBHOOK_SECRET itself: a Secrets
    # Manager ARN or name, read once per cold start (never put in plain template text).
    secret_id: str | None = None
    # The S3 bucket for bodies larger than the layout holds in line (ichido.aws.bodies).
    body_bucket: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AwsSettings":
        env = os.environ if env is None else env
        layout = env.get("ICHIDO_AWS_LAYOUT", "sqs")
        if layout not in LAYOUTS:
            raise ConfigError(f"ICHIDO_AWS_LAYOUT must be one of {', '.join(LAYOUTS)}")
        queue_url = env.get("ICHIDO_QUEUE_URL") or None
        try:
            max_receive = int(env.get("ICHIDO_MAX_RECEIVE_COUNT", "3"))
        except ValueError:
            raise ConfigError("ICHIDO_MAX_RECEIVE_COUNT must be an integer") from None
        if max_receive < 1:
            raise ConfigError("ICHIDO_MAX_RECEIVE_COUNT must be at least 1")
        return cls(layout=layout, queue_url=queue_url, dlq_url=env.get("ICHIDO_DLQ_URL") or None,
                   fifo=bool(queue_url and queue_url.endswith(".fifo")),
                   max_receive_count=max_receive,
                   secret_id=env.get("ICHIDO_WEBHOOK_SECRET_ID") or None,
                   body_bucket=env.get("ICHIDO_BODY_BUCKET") or None)
