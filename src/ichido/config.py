"""All settings in one place, read once at start from the environment; CLI flags override them."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from ichido.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
# A time an operator types (``--since``, the dashboard's filters) names a moment from 1970 to
# the last second of 9999: what Stripe's ``created`` and the stores' 64-bit columns all hold.
LATEST_MOMENT = 253_402_300_799


def parse_duration(text: str | float | int) -> float:
    """``"73h"`` → 262800.0; a bare number is seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 300s, 15m, 73h, 30d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_size(text: str | int) -> int:
    """``"512KiB"`` → 524288; a bare number is bytes."""
    if isinstance(text, int):
        return text
    match = re.match(r"^\s*(\d+)\s*(B|KiB|KB|K|MiB|MB|M)?\s*$", text, re.IGNORECASE)
    if not match:
        raise ConfigError(f"not a size: {text!r} (use e.g. 524288, 512KiB, 1MiB)")
    unit = (match.group(2) or "B").lower()
    factor = 1 if unit == "b" else 1024 if unit.startswith("k") else 1024 * 1024
    return int(match.group(1)) * factor


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
    # Thin events: reads of Stripe's API per second, per process (a sandbox allows 25).
    fetch_rate: float = 20.0
    # SQLite: NORMAL survives a process crash in WAL mode; FULL also survives power loss.
    sqlite_synchronous: str = "NORMAL"
    db_pool_size: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if "ICHIDO_DATABASE_URL" in env:
            values["database_url"] = env["ICHIDO_DATABASE_URL"]
        if env.get("ICHIDO_REDIS_URL"):
            values["redis_url"] = env["ICHIDO_REDIS_URL"]
        if env.get("STRIPE_WEBHOOK_SECRET_FILE"):  # kept out of ps and of the environment
            if env.get("STRIPE_WEBHOOK_SECRET"):
                raise ConfigError("set STRIPE_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRET_FILE, "
                                  "not both")
            values["webhook_secrets"] = split_secrets(
                read_text(env["STRIPE_WEBHOOK_SECRET_FILE"], "the webhook secret file"))
        elif env.get("STRIPE_WEBHOOK_SECRET"):
            values["webhook_secrets"] = split_secrets(env["STRIPE_WEBHOOK_SECRET"])
        durations = {
            "ICHIDO_TOLERANCE": "tolerance_seconds",
            "ICHIDO_SEEN_TTL": "seen_ttl_seconds",
            "ICHIDO_RETRY_BASE": "retry_base_seconds",
            "ICHIDO_RETRY_CAP": "retry_cap_seconds",
            "ICHIDO_LEASE": "lease_seconds",
            "ICHIDO_POLL_INTERVAL": "poll_interval_seconds",
            "ICHIDO_HEADER_TIMEOUT": "header_timeout_seconds",
            "ICHIDO_BODY_TIMEOUT": "body_timeout_seconds",
            "ICHIDO_KEEPALIVE": "keepalive_seconds",
            "ICHIDO_SHUTDOWN_TIMEOUT": "shutdown_timeout_seconds",
        }
        for name, attr in durations.items():
            if env.get(name):
                values[attr] = parse_duration(env[name])
        integers = {
            "ICHIDO_SEEN_MAX": "seen_max_entries",
            "ICHIDO_MAX_ATTEMPTS": "max_attempts",
            "ICHIDO_CLAIM_BATCH": "claim_batch",
            "ICHIDO_DB_POOL_SIZE": "db_pool_size",
            "ICHIDO_MAX_CONNECTIONS": "max_connections",
            "ICHIDO_MAX_CONNECTIONS_PER_ADDRESS": "max_connections_per_address",
        }
        for name, attr in integers.items():
            if env.get(name):
                values[attr] = _int(name, env[name])
        if env.get("ICHIDO_FETCH_RATE"):
            values["fetch_rate"] = _float("ICHIDO_FETCH_RATE", env["ICHIDO_FETCH_RATE"])
        if env.get("ICHIDO_MAX_BODY"):
            values["max_body_bytes"] = parse_size(env["ICHIDO_MAX_BODY"])
        if env.get("ICHIDO_MAX_HEADER"):
            values["max_header_bytes"] = parse_size(env["ICHIDO_MAX_HEADER"])
        if env.get("ICHIDO_TRUSTED_PROXIES"):
            values["trusted_proxies"] = split_secrets(env["ICHIDO_TRUSTED_PROXIES"])
        if env.get("ICHIDO_ALLOWED_SOURCES_FILE"):
            values["allowed_sources_file"] = env["ICHIDO_ALLOWED_SOURCES_FILE"]
        if env.get("ICHIDO_SQLITE_SYNCHRONOUS"):
            values["sqlite_synchronous"] = env["ICHIDO_SQLITE_SYNCHRONOUS"].upper()
        values.update({k: v for k, v in overrides.items() if v is not None})
        for listed in ("webhook_secrets", "trusted_proxies"):
            if isinstance(values.get(listed), str):
                values[listed] = split_secrets(values[listed])
        return cls(**values).validated()

    def __repr__(self) -> str:
        """Secrets never reach a log, a traceback with locals, or an error page
        (I6, docs/invariants.md)."""
        shown = []
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "webhook_secrets" and value:
                value = "***"
            elif name.endswith("_url") and isinstance(value, str):
                value = redact_url(value)
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    def validated(self) -> "Settings":
        """Refuse values that would silently switch a protection off (a tolerance of 0 accepts
        a signature from 1970, a lease of 0 lets every worker claim the same event) or that no
        deployment means (NaN, negative, a body limit of a gigabyte)."""
        for attr, env, low, high in _BOUNDS:
            _check_bound(attr, env, getattr(self, attr), low, high)
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


_HOUR, _DAY = 3600.0, 86400.0
_MIB = 1024 * 1024
# (attribute, environment variable, lowest, highest): both bounds inclusive.
_BOUNDS: tuple[tuple[str, str, float, float], ...] = (
    ("tolerance_seconds", "ICHIDO_TOLERANCE", 1, _DAY),
    ("max_body_bytes", "ICHIDO_MAX_BODY", 1024, 64 * _MIB),
    ("max_header_bytes", "ICHIDO_MAX_HEADER", 1024, 1 * _MIB),
    ("header_timeout_seconds", "ICHIDO_HEADER_TIMEOUT", 0.1, 300),
    ("body_timeout_seconds", "ICHIDO_BODY_TIMEOUT", 0.1, 300),
    ("keepalive_seconds", "ICHIDO_KEEPALIVE", 0.1, 3600),
    ("max_connections", "ICHIDO_MAX_CONNECTIONS", 1, 1_000_000),
    ("max_connections_per_address", "ICHIDO_MAX_CONNECTIONS_PER_ADDRESS", 1, 1_000_000),
    ("shutdown_timeout_seconds", "ICHIDO_SHUTDOWN_TIMEOUT", 0.1, _HOUR),
    ("seen_ttl_seconds", "ICHIDO_SEEN_TTL", 1, 400 * _DAY),
    ("seen_max_entries", "ICHIDO_SEEN_MAX", 1, 1_000_000_000),
    ("max_attempts", "ICHIDO_MAX_ATTEMPTS", 1, 1_000_000),
    ("retry_base_seconds", "ICHIDO_RETRY_BASE", 0.001, _DAY),
    ("retry_cap_seconds", "ICHIDO_RETRY_CAP", 0.001, 30 * _DAY),
    # A lease shorter than a second expires while a handler is still running, everywhere.
    ("lease_seconds", "ICHIDO_LEASE", 1, _DAY),
    ("claim_batch", "ICHIDO_CLAIM_BATCH", 1, 10_000),
    ("poll_interval_seconds", "ICHIDO_POLL_INTERVAL", 0.001, _HOUR),
    ("fetch_rate", "ICHIDO_FETCH_RATE", 0.01, 10_000),
    ("db_pool_size", "ICHIDO_DB_POOL_SIZE", 1, 1000),
)


def _check_bound(attr: str, env: str, value: Any, low: float, high: float) -> None:
    integer = isinstance(low, int) and isinstance(high, int) and attr not in _FLOATS
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(f"{env} must be a number, not {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{env} must be between {low:.15g} and {high:.15g}, not {value:.15g}"
                          f"{' (0 would switch the protection off)' if value == 0 else ''}")


_FLOATS = {f.name for f in dataclasses.fields(Settings) if f.type in ("float", float)}


def check_bounds(settings: Any, bounds: Sequence[tuple[str, str, float, float]]) -> None:
    """``(attribute, variable, lowest, highest)`` bounds, both inclusive, for the settings
    classes beside the core's (the dashboard's): the same refusals and messages."""
    for attr, env, low, high in bounds:
        _check_bound(attr, env, getattr(settings, attr), low, high)


def parse_setting(name: str, kind: str, text: str) -> Any:
    """One environment value of ``kind`` (text, int, float, duration, size), for the settings
    classes of applications built on ichido (the shop's, the recovery tools')."""
    if kind == "text":
        return text
    if kind == "size":
        return parse_size(text)
    if kind == "duration":
        return parse_duration(text)
    return _int(name, text) if kind == "int" else _float(name, text)


def settings_from_env(cls: Any, table: Mapping[str, tuple[str, str]],
                      env: Mapping[str, str] | None, overrides: Mapping[str, Any]) -> Any:
    """Build an application's settings dataclass from ``table`` (variable → (field, kind)),
    the environment and non-None ``overrides``, validated."""
    env = os.environ if env is None else env
    values = {attr: parse_setting(name, kind, env[name])
              for name, (attr, kind) in table.items() if env.get(name)}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values).validated()


def shown_settings(settings: Any, hidden: Sequence[str]) -> str:
    """A settings dataclass as ``Name(field=value, ...)`` with ``hidden`` fields as ``***`` and
    passwords cut out of URLs: secrets never reach a log or a traceback (I6)."""
    shown = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.name in hidden and value:
            value = "***"
        elif field.name.endswith("_url") and isinstance(value, str):
            value = redact_url(value)
        shown.append(f"{field.name}={value!r}")
    return f"{type(settings).__name__}({', '.join(shown)})"


def read_text(path: "os.PathLike[str] | str", what: str) -> str:
    """A configuration file's text, or a ``ConfigError`` naming ``what`` it was meant to be."""
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    """TOML with decimals kept exact (money and shares), or a ``ConfigError`` naming ``origin``."""
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``."""
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def split_secrets(text: str) -> tuple[str, ...]:
    """Comma- (or, in a file, line-) separated ``whsec_`` secrets (two while rolling), or
    trusted proxies."""
    return tuple(part for part in re.split(r"[,\s]+", text) if part)


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {text!r}") from None


def _float(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None
