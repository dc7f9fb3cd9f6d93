"""Recovery's settings: read once at start from the environment, beside ichido's own.

``STRIPE_API_KEY`` and ``STRIPE_API_BASE`` mean what they mean for the shop (the reconciler and
re-fetches read Stripe's API, or the emulator's); storage is ``ICHIDO_DATABASE_URL``, in the
core settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ichido.config import settings_from_env, shown_settings
from ichido.errors import ConfigError

# environment variable -> (field, parser)
_ENV: dict[str, tuple[str, str]] = {
    "STRIPE_API_KEY": ("stripe_api_key", "text"),
    "STRIPE_API_BASE": ("stripe_api_base", "text"),
    "ICHIDO_RECONCILE_INTERVAL": ("reconcile_interval_seconds", "duration"),
    "ICHIDO_ALERT_WEBHOOK_URL": ("alert_webhook_url", "text"),
    "ICHIDO_ALERT_WINDOW": ("alert_window_seconds", "duration"),
    "ICHIDO_ALERT_BACKLOG": ("alert_backlog_seconds", "duration"),
    "ICHIDO_ALERT_INTERVAL": ("alert_interval_seconds", "duration"),
    "ICHIDO_ALERT_SIGNATURE_SHARE": ("alert_signature_share", "float"),
    "ICHIDO_ALERT_SIGNATURE_MIN": ("alert_signature_min", "int"),
}


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
        return settings_from_env(cls, _ENV, env, overrides)

    def with_(self, **changes: Any) -> "RecoverySettings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    def validated(self) -> "RecoverySettings":
        if not 0 < self.alert_signature_share <= 1:
            raise ConfigError("ICHIDO_ALERT_SIGNATURE_SHARE must be a share in (0, 1], e.g. 0.5")
        for name in ("alert_window_seconds", "alert_interval_seconds", "alert_backlog_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be a positive duration")
        if self.reconcile_interval_seconds < 0 or self.alert_signature_min < 1:
            raise ConfigError("ICHIDO_RECONCILE_INTERVAL must be >= 0 and"
                              " ICHIDO_ALERT_SIGNATURE_MIN >= 1")
        return self

    def require_api_key(self) -> str:
        if not self.stripe_api_key:
            raise ConfigError("STRIPE_API_KEY is not set: reading Stripe's Events API needs it"
                              " (sk_test_… with the emulator)", code="missing_api_key")
        return self.stripe_api_key

    def __repr__(self) -> str:
        """The API key and the alert webhook (its path is the secret) never reach a log."""
        return shown_settings(self, ("stripe_api_key", "alert_webhook_url"))

    __str__ = __repr__

