"""The AWS layout's settings, read once per cold start from the environment.

The core settings (``ICHIDO_DATABASE_URL``, ``STRIPE_WEBHOOK_SECRET``, ``ICHIDO_REDIS_URL`` …)
stay in ``ichido.config``; these name the AWS resources that only this layout has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ichido.errors import ConfigError
from ichido.setting import Setting, check_table, read_env

LAYOUTS = ("sqs", "streams")
_DOC = "docs/aws.md"
# Every setting of the AWS layout: reading, validation and the docs check derive from here.
SETTINGS: tuple[Setting, ...] = (
    Setting("layout", "ICHIDO_AWS_LAYOUT", read_empty=True, doc=_DOC),
    Setting("queue_url", "ICHIDO_QUEUE_URL", doc=_DOC),
    Setting("dlq_url", "ICHIDO_DLQ_URL", doc=_DOC),
    Setting("max_receive_count", "ICHIDO_MAX_RECEIVE_COUNT", "int", low=1,
            says="must be at least 1", read_empty=True, doc=_DOC),
    Setting("secret_id", "ICHIDO_WEBHOOK_SECRET_ID", doc=_DOC),
    Setting("body_bucket", "ICHIDO_BODY_BUCKET", doc=_DOC),
    Setting("api_key_secret_id", "ICHIDO_STRIPE_API_KEY_SECRET_ID", doc=_DOC),
)


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
    # Where the worker's Stripe API key lives (a Secrets Manager ARN or name), read when the
    # first thin event is fetched; unset, the worker reads STRIPE_API_KEY.
    api_key_secret_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AwsSettings":
        values = read_env(SETTINGS, env)
        queue_url = values.get("queue_url")
        return cls(**values, fifo=bool(queue_url and queue_url.endswith(".fifo"))).validated()

    def validated(self) -> "AwsSettings":
        if self.layout not in LAYOUTS:
            raise ConfigError(f"ICHIDO_AWS_LAYOUT must be one of {', '.join(LAYOUTS)}")
        check_table(self, SETTINGS)
        return self
