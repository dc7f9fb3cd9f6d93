"""All settings in one place, read once at start from the environment; CLI flags override them."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Mapping

from ichido.errors import ConfigError
from ichido.setting import (  # noqa: F401  # the parsers, where callers have always found them
    Setting,
    check_table,
    from_env,
    parse_duration,
    parse_size,
    read_text,
    redact_url,
    shown,
    split_list as split_secrets,
)

# The public API (docs/api.md): what an application may import from here.
__all__ = ["SETTINGS", "Settings", "parse_duration", "parse_size", "parse_toml", "read_text"]

# A time an operator types (``--since``, the dashboard's filters) names a moment from 1970 to
# the last second of 9999: what Stripe's ``created`` and the stores' 64-bit columns all hold.
LATEST_MOMENT = 253_402_300_799
_HOUR, _DAY = 3600.0, 86400.0
_MIB = 1024 * 1024

# Every setting of the core: its field, variable, kind and bounds (both inclusive). Reading,
# validation, the repr and the README check (tests/test_config.py) all come from here.
SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", "ICHIDO_DATABASE_URL", read_empty=True),
    Setting("redis_url", "ICHIDO_REDIS_URL"),
    Setting("webhook_secrets", "STRIPE_WEBHOOK_SECRET", "list", secret=True,
            file_env="STRIPE_WEBHOOK_SECRET_FILE"),
    Setting("tolerance_seconds", "ICHIDO_TOLERANCE", "duration", 1, _DAY),
    Setting("max_body_bytes", "ICHIDO_MAX_BODY", "size", 1024, 64 * _MIB),
    Setting("max_header_bytes", "ICHIDO_MAX_HEADER", "size", 1024, 1 * _MIB),
    Setting("header_timeout_seconds", "ICHIDO_HEADER_TIMEOUT", "duration", 0.1, 300),
    Setting("body_timeout_seconds", "ICHIDO_BODY_TIMEOUT", "duration", 0.1, 300),
    Setting("keepalive_seconds", "ICHIDO_KEEPALIVE", "duration", 0.1, 3600),
    Setting("max_connections", "ICHIDO_MAX_CONNECTIONS", "int", 1, 1_000_000),
    Setting("max_connections_per_address", "ICHIDO_MAX_CONNECTIONS_PER_ADDRESS", "int",
            1, 1_000_000),
    Setting("trusted_proxies", "ICHIDO_TRUSTED_PROXIES", "list"),
    Setting("allowed_sources_file", "ICHIDO_ALLOWED_SOURCES_FILE"),
    Setting("shutdown_timeout_seconds", "ICHIDO_SHUTDOWN_TIMEOUT", "duration", 0.1, _HOUR),
    Setting("seen_ttl_seconds", "ICHIDO_SEEN_TTL", "duration", 1, 400 * _DAY),
    Setting("seen_max_entries", "ICHIDO_SEEN_MAX", "int", 1, 1_000_000_000),
    Setting("max_attempts", "ICHIDO_MAX_ATTEMPTS", "int", 1, 1_000_000),
    Setting("retry_base_seconds", "ICHIDO_RETRY_BASE", "duration", 0.001, _DAY),
    Setting("retry_cap_seconds", "ICHIDO_RETRY_CAP", "duration", 0.001, 30 * _DAY),
    # A lease shorter than a second expires while a handler is still running, everywhere.
    Setting("lease_seconds", "ICHIDO_LEASE", "duration", 1, _DAY),
    Setting("claim_batch", "ICHIDO_CLAIM_BATCH", "int", 1, 10_000),
    Setting("poll_interval_seconds", "ICHIDO_POLL_INTERVAL", "duration", 0.001, _HOUR),
    Setting("sqlite_synchronous", "ICHIDO_SQLITE_SYNCHRONOUS", "upper"),
    Setting("db_pool_size", "ICHIDO_DB_POOL_SIZE", "int", 1, 1000),
)


@dataclass(frozen=True)
class Settings:
    """Every knob ichido has. Defaults are the ones a new user should get."""

    database_url: str = "sqlite:///ichido.db"
    redis_url: str | None = None
    webhook_secrets: tuple[str, ...] = ()
    # Signature: Stripe's own default tolerance for construct_event.
    tolerance_seconds: float = 300.0
    max_body_bytes: int = 512 * 1024
    # Before any signature is read, anyone on the internet can connect: bound what that costs.
    max_header_bytes: int = 16 * 1024  # request line + headers (a real Stripe request: ~1 KB)
    header_timeout_seconds: float = 10.0  # from connecting (or a request's first byte) to headers
    body_timeout_seconds: float = 20.0  # from the headers to the body's last byte
    keepalive_seconds: float = 5.0  # an idle connection between requests
    max_connections: int = 500  # open at once; more are closed at once (keep under ulimit -n)
    # One address (an IPv6 /64) holds at most this many; past it (or past max_connections) the
    # oldest connection still waiting for a request's headers makes room (ichido.connections).
    max_connections_per_address: int = 100
    # Proxies whose X-Forwarded-For names the client, and that may hold more than one
    # address's share of connections (addresses or networks; none by default).
    trusted_proxies: tuple[str, ...] = ()
    # Stripe's webhook addresses, as a file the operator refreshes: set, only they may deliver.
    allowed_sources_file: str | None = None
    # SIGTERM: what is still being stored gets this long, then its senders get 503.
    shutdown_timeout_seconds: float = 10.0
    # Seen tier: Stripe retries for 3 days; 73 h keeps a margin. Bounded in memory.
    seen_ttl_seconds: float = 73 * 3600.0
    seen_max_entries: int = 1_000_000
    # Worker.
    max_attempts: int = 8
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 3600.0
    lease_seconds: float = 30.0
    claim_batch: int = 32
    poll_interval_seconds: float = 0.2
    # SQLite: NORMAL survives a process crash in WAL mode; FULL also survives power loss.
    sqlite_synchronous: str = "NORMAL"
    db_pool_size: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        return from_env(cls, SETTINGS, env, overrides)

    def __repr__(self) -> str:
        """Secrets never reach a log, a traceback with locals, or an error page
        (I6, docs/invariants.md)."""
        return shown(self, SETTINGS)

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    def validated(self) -> "Settings":
        """Refuse values that would silently switch a protection off (a tolerance of 0 accepts
        a signature from 1970, a lease of 0 lets every worker claim the same event) or that no
        deployment means (NaN, negative, a body limit of a gigabyte)."""
        check_table(self, SETTINGS)
        if self.retry_cap_seconds < self.retry_base_seconds:
            raise ConfigError("ICHIDO_RETRY_CAP must not be shorter than ICHIDO_RETRY_BASE")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(f"ICHIDO_TRUSTED_PROXIES: {proxy[:60]!r} is not an IP address "
                                  f"or network") from None
        if self.sqlite_synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ConfigError("ICHIDO_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
        for secret in self.webhook_secrets:
            if not secret.startswith("whsec_") or len(secret) < 16 or not secret.isprintable():
                raise ConfigError("STRIPE_WEBHOOK_SECRET entries must be whsec_… signing secrets "
                                  "(at least 16 printable characters)")
        return self

    def require_secret(self) -> None:
        """The receiver must never run without a secret: that would accept anything."""
        if not self.webhook_secrets:
            raise ConfigError(
                "STRIPE_WEBHOOK_SECRET is not set: the receiver refuses to start without the "
                "endpoint's signing secret (whsec_…; comma-separate two while rolling it)",
                code="missing_secret",
            )


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    """TOML with decimals kept exact (money and shares), or a ``ConfigError`` naming ``origin``."""
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
