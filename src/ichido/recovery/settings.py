"""Recovery's settings: read once at start from the environment, beside ichido's own.

``STRIPE_API_KEY`` and ``STRIPE_API_BASE`` mean what they mean for the shop (the reconciler and
re-fetches read Stripe's API, or the emulator's); storage is ``ICHIDO_DATABASE_URL``, in the
core settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ichido.errors import ConfigError
from ichido.setting import Setting, check_table, from_env, shown

_POSITIVE = "must be a positive duration"
# Every setting of recovery: reading, validation, the repr and the docs check derive from here.
SETTINGS: tuple[Setting, ...] = (
    Setting("stripe_api_key", "STRIPE_API_KEY", secret=True, doc="docs/recovery.md"),
    Setting("stripe_api_base", "STRIPE_API_BASE", doc="docs/recovery.md"),
    Setting("reconcile_interval_seconds", "ICHIDO_RECONCILE_INTERVAL", "duration", low=0,
            says="must be >= 0", doc="docs/recovery.md"),
    # The alert webhook's path is the secret (a Slack-compatible incoming webhook).
    Setting("alert_webhook_url", "ICHIDO_ALERT_WEBHOOK_URL", secret=True, doc="docs/recovery.md"),
    Setting("alert_window_seconds", "ICHIDO_ALERT_WINDOW", "duration", low=0, low_open=True,
            says=_POSITIVE, doc="docs/recovery.md"),
    Setting("alert_backlog_seconds", "ICHIDO_ALERT_BACKLOG", "duration", low=0, low_open=True,
            says=_POSITIVE, doc="docs/recovery.md"),
    Setting("alert_interval_seconds", "ICHIDO_ALERT_INTERVAL", "duration", low=0, low_open=True,
            says=_POSITIVE, doc="docs/recovery.md"),
    Setting("alert_signature_share", "ICHIDO_ALERT_SIGNATURE_SHARE", "float", low=0, high=1,
            low_open=True, says="must be a share in (0, 1], e.g. 0.5", doc="docs/recovery.md"),
    Setting("alert_signature_min", "ICHIDO_ALERT_SIGNATURE_MIN", "int", low=1,
            says="must be >= 1", doc="docs/recovery.md"),
)


@dataclass(frozen=True)
class RecoverySettings:
    """Every knob of the reconciler and the alerts. Defaults are the ones to start with."""

    stripe_api_key: str | None = None
    stripe_api_base: str | None = None  # None: Stripe itself; the emulator's URL in development
    reconcile_interval_seconds: float = 0.0  # the sweep inside `serve`; 0: off
    alert_webhook_url: str | None = None  # Slack-compatible incoming webhook (a secret URL)
    alert_window_seconds: float = 600.0  # at most one message per condition per window
    alert_backlog_seconds: float = 300.0  # alert when the oldest pending event is older
    alert_interval_seconds: float = 30.0  # how often the watcher looks
    alert_signature_share: float = 0.5  # alert when this share of deliveries is refused...
    alert_signature_min: int = 10  # ...and at least this many were, since the last look

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 **overrides: Any) -> "RecoverySettings":
        return from_env(cls, SETTINGS, env, overrides)

    def with_(self, **changes: Any) -> "RecoverySettings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    def validated(self) -> "RecoverySettings":
        check_table(self, SETTINGS)
        return self

    def require_api_key(self) -> str:
        if not self.stripe_api_key:
            raise ConfigError("STRIPE_API_KEY is not set: reading Stripe's Events API needs it"
                              " (sk_test_… with the emulator)", code="missing_api_key")
        return self.stripe_api_key

    def __repr__(self) -> str:
        """The API key and the alert webhook (its path is the secret) never reach a log."""
        return shown(self, SETTINGS)

    __str__ = __repr__

