"""The shop's settings: read once at start from the environment, beside ichido's own.

They live here, not in ``ichido.config``, because the shop is an application on ichido and the
core must not know what a catalogue or a warehouse is. ``ICHIDO_PRICING`` is read here too, so
no code reads the environment behind the settings' back.
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
    "ICHIDO_CATALOG": ("catalog_path", "text"),
    "ICHIDO_PRICING": ("pricing_path", "text"),
    "ICHIDO_MAIL_DIR": ("mail_dir", "text"),
    "ICHIDO_SMTP_URL": ("smtp_url", "text"),
    "ICHIDO_MAIL_FROM": ("mail_from", "text"),
    "ICHIDO_WAREHOUSE_EMAIL": ("warehouse_email", "text"),
    "ICHIDO_MAX_FEE_SHARE": ("max_fee_share", "float"),
    "ICHIDO_KONBINI_EXPIRES_AFTER_DAYS": ("konbini_expires_after_days", "int"),
    "ICHIDO_ORDER_MAX_BODY": ("order_max_body_bytes", "size"),
    "ICHIDO_ORDER_UNPAID_TTL": ("unpaid_order_ttl_seconds", "duration"),
    "ICHIDO_SHOP_LOCALE": ("default_locale", "text"),
    "ICHIDO_CHECKOUT_RETURN_URL": ("checkout_return_url", "text"),
    "ICHIDO_SUBSCRIPTION_GRACE": ("subscription_grace_seconds", "duration"),
    "ICHIDO_PARENT_WAIT": ("parent_wait_seconds", "duration"),
    "ICHIDO_TRANSFER_HOLD": ("transfer_hold_seconds", "duration"),
    "ICHIDO_PAYPAY_HOLD": ("paypay_hold_seconds", "duration"),
}
MAX_TRANSFER_HOLD_SECONDS = 60 * 86400.0
MAX_GRACE_SECONDS = 60 * 86400.0  # Stripe's own dunning gives up within two months
MAX_PARENT_WAIT_SECONDS = 3 * 86400.0  # Stripe's retries end within three days
LOCALES = ("ja", "en")


@dataclass(frozen=True)
class ShopSettings:
    """Every knob the shop has. Defaults are the ones a new shop should get."""

    stripe_api_key: str | None = None
    stripe_api_base: str | None = None  # None: Stripe itself; the emulator's URL in development
    catalog_path: str | None = None  # None: the packaged example catalogue
    pricing_path: str | None = None  # None: Stripe Japan's public rates (packaged pricing.toml)
    mail_dir: str = "mail"
    smtp_url: str | None = None  # smtp://host:port; unset: mail goes to files in mail_dir
    mail_from: str = "shop@example.com"
    warehouse_email: str = "warehouse@example.com"
    max_fee_share: float = 0.2  # refuse a method whose fee takes more of the sale than this
    konbini_expires_after_days: int = 3
    # An order body is a handful of fields; anything larger is refused before it is parsed.
    order_max_body_bytes: int = 16 * 1024
    # An order still ``created`` this long after it was placed (its client never came back)
    # gives its stock back.
    unpaid_order_ttl_seconds: float = 3600.0
    default_locale: str = "ja"  # the buyers' language unless an order says otherwise
    # Where Stripe Checkout sends the buyer back (``?order=…&checkout=success|cancel``).
    checkout_return_url: str = "http://127.0.0.1:8000/checkout/done"
    # A subscriber keeps the stream this long after an invoice became late (a card renewal
    # from its period's start, a konbini invoice from its due date), then loses it until paid.
    subscription_grace_seconds: float = 3 * 86400.0
    # An event that may be of an object the shop is creating right now (an invoice of a
    # subscription whose Stripe id is not stored yet) waits this long after it was created, and
    # never past the worker's last attempt, before it is ignored as not the shop's (``foreign``).
    # A create call's answer or a Checkout Session's completion comes within seconds; the
    # worker's default retries span a minute or two.
    parent_wait_seconds: float = 60.0
    # A bank-transfer order with nothing received is released (stock back, its PaymentIntent
    # canceled at Stripe) this long after it was placed; the mail gives the buyer the date.
    transfer_hold_seconds: float = 7 * 86400.0
    # A PayPay order whose buyer never authorised it is released after this long.
    paypay_hold_seconds: float = 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "ShopSettings":
        return settings_from_env(cls, _ENV, env, overrides)

    def with_(self, **changes: Any) -> "ShopSettings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    def validated(self) -> "ShopSettings":
        if not 0 < self.max_fee_share <= 1:
            raise ConfigError("ICHIDO_MAX_FEE_SHARE must be a share in (0, 1], e.g. 0.2")
        if not 1 <= self.konbini_expires_after_days <= 60:
            raise ConfigError("ICHIDO_KONBINI_EXPIRES_AFTER_DAYS must be 1 to 60 (Stripe's range)")
        if self.order_max_body_bytes < 256:
            raise ConfigError("ICHIDO_ORDER_MAX_BODY must be at least 256 bytes")
        if self.unpaid_order_ttl_seconds <= 0:
            raise ConfigError("ICHIDO_ORDER_UNPAID_TTL must be a positive duration, e.g. 1h")
        if not 0 <= self.subscription_grace_seconds <= MAX_GRACE_SECONDS:
            raise ConfigError("ICHIDO_SUBSCRIPTION_GRACE must be a duration from 0 to 60d,"
                              " e.g. 3d")
        if not 0 <= self.parent_wait_seconds <= MAX_PARENT_WAIT_SECONDS:
            raise ConfigError("ICHIDO_PARENT_WAIT must be a duration from 0 to 3d, e.g. 15m")
        if not 60 <= self.transfer_hold_seconds <= MAX_TRANSFER_HOLD_SECONDS:
            raise ConfigError("ICHIDO_TRANSFER_HOLD must be a duration from 1m to 60d, e.g. 7d")
        if self.paypay_hold_seconds <= 0:
            raise ConfigError("ICHIDO_PAYPAY_HOLD must be a positive duration, e.g. 1h")
        if self.default_locale not in LOCALES:
            raise ConfigError(f"ICHIDO_SHOP_LOCALE must be one of {', '.join(LOCALES)}")
        return self

    def require_api_key(self) -> str:
        if not self.stripe_api_key:
            raise ConfigError("STRIPE_API_KEY is not set: the shop needs it to create payments "
                              "(sk_test_… with the emulator)", code="missing_api_key")
        return self.stripe_api_key

    def __repr__(self) -> str:
        """The API key and an SMTP password never reach a log or a traceback
        (I6, docs/invariants.md)."""
        return shown_settings(self, ("stripe_api_key",))

    __str__ = __repr__

