"""All settings in one place, read once at start from the environment; CLI flags override them."""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from dataclasses import dataclass, replace
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from ichido.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


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
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if "ICHIDO_DATABASE_URL" in env:
            values["database_url"] = env["ICHIDO_DATABASE_URL"]
        if env.get("ICHIDO_REDIS_URL"):
            values["redis_url"] = env["ICHIDO_REDIS_URL"]
        if env.get("STRIPE_WEBHOOK_SECRET"):
            values["webhook_secrets"] = split_secrets(env["STRIPE_WEBHOOK_SECRET"])
        durations = {
            "ICHIDO_TOLERANCE": "tolerance_seconds",
            "ICHIDO_SEEN_TTL": "seen_ttl_seconds",
            "ICHIDO_RETRY_BASE": "retry_base_seconds",
            "ICHIDO_RETRY_CAP": "retry_cap_seconds",
            "ICHIDO_LEASE": "lease_seconds",
            "ICHIDO_POLL_INTERVAL": "poll_interval_seconds",
        }
        for name, attr in durations.items():
            if env.get(name):
                values[attr] = parse_duration(env[name])
        integers = {
            "ICHIDO_SEEN_MAX": "seen_max_entries",
            "ICHIDO_MAX_ATTEMPTS": "max_attempts",
            "ICHIDO_CLAIM_BATCH": "claim_batch",
            "ICHIDO_DB_POOL_SIZE": "db_pool_size",
        }
        for name, attr in integers.items():
            if env.get(name):
                values[attr] = _int(name, env[name])
        if env.get("ICHIDO_MAX_BODY"):
            values["max_body_bytes"] = parse_size(env["ICHIDO_MAX_BODY"])
        if env.get("ICHIDO_SQLITE_SYNCHRONOUS"):
            values["sqlite_synchronous"] = env["ICHIDO_SQLITE_SYNCHRONOUS"].upper()
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("webhook_secrets"), str):
            values["webhook_secrets"] = split_secrets(values["webhook_secrets"])
        return cls(**values).validated()

    def __repr__(self) -> str:
        """Secrets never reach a log, a traceback with locals, or an error page (I6)."""
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
        if self.sqlite_synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ConfigError("ICHIDO_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
        if self.max_attempts < 1:
            raise ConfigError("ICHIDO_MAX_ATTEMPTS must be at least 1")
        if self.max_body_bytes < 1024:
            raise ConfigError("ICHIDO_MAX_BODY must be at least 1 KiB")
        for secret in self.webhook_secrets:
            if not secret.startswith("whsec_"):
                raise ConfigError("STRIPE_WEBHOOK_SECRET entries must start with whsec_")
        return self

    def require_secret(self) -> None:
        """The receiver must never run without a secret: that would accept anything."""
        if not self.webhook_secrets:
            raise ConfigError(
                "STRIPE_WEBHOOK_SECRET is not set: the receiver refuses to start without the "
                "endpoint's signing secret (whsec_…; comma-separate two while rolling it)",
                code="missing_secret",
            )


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
    return tuple(part.strip() for part in text.split(",") if part.strip())


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
