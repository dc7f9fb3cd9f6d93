"""The shop's settings: read once at start from the environment, beside ichido's own.

They live here, not in ``ichido.config``, because the shop is an application on ichido and the
core must not know what a catalogue or a warehouse is. ``ICHIDO_PRICING`` is read here too, so
no code reads the environment behind the settings' back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ichido.errors import ConfigError
from ichido.setting import Setting, check_table, from_env, shown

MAX_GRACE_SECONDS = 60 * 86400.0  # Stripe's own dunning gives up within two months
MAX_PARENT_WAIT_SECONDS = 3 * 86400.0  # Stripe's retries end within three days
MAX_TRANSFER_HOLD_SECONDS = 60 * 86400.0
_DOC = "docs/shop.md"
# Every setting of the shop: reading, validation, the repr and the docs check derive from here.
SETTINGS: tuple[Setting, ...] = (
    Setting("stripe_api_key", "STRIPE_API_KEY", secret=True, doc=_DOC),
    Setting("stripe_api_base", "STRIPE_API_BASE", doc=_DOC),
    Setting("catalog_path", "ICHIDO_CATALOG", doc=_DOC),
    Setting("pricing_path", "ICHIDO_PRICING", doc=_DOC),
    Setting("mail_dir", "ICHIDO_MAIL_DIR", doc=_DOC),
    Setting("smtp_url", "ICHIDO_SMTP_URL", doc=_DOC),  # its password is cut out of the repr
    Setting("mail_from", "ICHIDO_MAIL_FROM", doc=_DOC),
    Setting("warehouse_email", "ICHIDO_WAREHOUSE_EMAIL", doc=_DOC),
    Setting("max_fee_share", "ICHIDO_MAX_FEE_SHARE", "float", low=0, high=1, low_open=True,
            says="must be a share in (0, 1], e.g. 0.2", doc=_DOC),
    Setting("konbini_expires_after_days", "ICHIDO_KONBINI_EXPIRES_AFTER_DAYS", "int", 1, 60,
            says="must be 1 to 60 (Stripe's range)", doc=_DOC),
    Setting("order_max_body_bytes", "ICHIDO_ORDER_MAX_BODY", "size", low=256,
            says="must be at least 256 bytes", doc=_DOC),
    Setting("unpaid_order_ttl_seconds", "ICHIDO_ORDER_UNPAID_TTL", "duration", low=0,
            low_open=True, says="must be a positive duration, e.g. 1h", doc=_DOC),
    Setting("default_locale", "ICHIDO_SHOP_LOCALE", doc=_DOC),
    Setting("checkout_return_url", "ICHIDO_CHECKOUT_RETURN_URL", doc=_DOC),
    Setting("subscription_grace_seconds", "ICHIDO_SUBSCRIPTION_GRACE", "duration", 0,
            MAX_GRACE_SECONDS, says="must be a duration from 0 to 60d, e.g. 3d", doc=_DOC),
    Setting("parent_wait_seconds", "ICHIDO_PARENT_WAIT", "duration", 0, MAX_PARENT_WAIT_SECONDS,
            says="must be a duration from 0 to 3d, e.g. 15m", doc=_DOC),
    Setting("transfer_hold_seconds", "ICHIDO_TRANSFER_HOLD", "duration", 60,
            MAX_TRANSFER_HOLD_SECONDS, says="must be a duration from 1m to 60d, e.g. 7d",
            doc=_DOC),
    Setting("paypay_hold_seconds", "ICHIDO_PAYPAY_HOLD", "duration", low=0, low_open=True,
            says="must be a positive duration, e.g. 1h", doc=_DOC),
)
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
        return from_env(cls, SETTINGS, env, overrides)

    def with_(self, **changes: Any) -> "ShopSettings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    def validated(self) -> "ShopSettings":
        check_table(self, SETTINGS)
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
        return shown(self, SETTINGS)

    __str__ = __repr__

