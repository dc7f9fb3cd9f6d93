"""The dashboard's own settings, read once from the environment (the core's stay in config.py)."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Mapping

from ichido.config import check_bounds, parse_duration
from ichido.dashboard.panels import time_zone
from ichido.errors import ConfigError

# (attribute, environment variable, lowest, highest), both inclusive, as the core's settings.
# A session outlives no working week: a cookie copied off a machine stops opening the page.
BOUNDS: tuple[tuple[str, str, float, float], ...] = (
    ("session_seconds", "ICHIDO_DASHBOARD_SESSION", 60.0, 7 * 86400.0),
    ("refresh_seconds", "ICHIDO_DASHBOARD_REFRESH", 1.0, 3600.0),
)


@dataclass(frozen=True)
class Operator:
    """Who holds a token. The digest, not the token, is what a session remembers."""

    name: str
    token: str = ""

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DashboardSettings:
    """``ICHIDO_DASHBOARD_TOKEN``: one token, or ``name:token`` entries separated by commas so
    that the audit trail names the person. ``ICHIDO_DASHBOARD_SECRET`` signs session cookies
    (default: derived from the tokens). Sessions themselves live in the store (``auth.py``):
    removing a token ends its sessions in every process. ``ICHIDO_DASHBOARD_TIMEZONE`` (an IANA
    name) is the zone every time on the page is shown in; unset, the application's
    (``app.dashboard.timezone``), else UTC."""

    operators: tuple[Operator, ...] = ()
    secret: str = ""
    session_seconds: float = 8 * 3600.0
    refresh_seconds: float = 10.0  # the overview reloads itself this often
    timezone: str | None = None  # None: the application's, else UTC

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DashboardSettings":
        env = os.environ if env is None else env
        operators = parse_tokens(env.get("ICHIDO_DASHBOARD_TOKEN", ""))
        secret = env.get("ICHIDO_DASHBOARD_SECRET") or derived_secret(operators)
        session = parse_duration(env.get("ICHIDO_DASHBOARD_SESSION") or "8h")
        refresh = parse_duration(env.get("ICHIDO_DASHBOARD_REFRESH") or "10s")
        return cls(operators=operators, secret=secret, session_seconds=session,
                   refresh_seconds=refresh,
                   timezone=env.get("ICHIDO_DASHBOARD_TIMEZONE", "").strip() or None).validated()

    def validated(self) -> "DashboardSettings":
        check_bounds(self, BOUNDS)
        if self.timezone is not None:
            time_zone(self.timezone)  # a name that is no zone stops the start, in one line
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.operators)

    def __repr__(self) -> str:
        names = ", ".join(operator.name for operator in self.operators)
        return f"DashboardSettings(operators=[{names}], secret=***)"


def parse_tokens(text: str) -> tuple[Operator, ...]:
    operators = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, _, token = entry.partition(":") if ":" in entry else ("operator", "", entry)
        if len(token) < 16:
            raise ConfigError("ICHIDO_DASHBOARD_TOKEN: each token needs at least 16 characters"
                              " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
        operators.append(Operator(name=name.strip() or "operator", token=token))
    return tuple(operators)


def derived_secret(operators: tuple[Operator, ...]) -> str:
    key = "\n".join(operator.token for operator in operators).encode()
    return hmac.new(key, b"ichido-dashboard-session", hashlib.sha256).hexdigest()
