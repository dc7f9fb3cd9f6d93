"""The dashboard's own settings, read once from the environment (the core's stay in config.py)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Mapping

from ichido.dashboard.panels import time_zone
from ichido.errors import ConfigError
from ichido.setting import Setting, check_table, read_env, shown


@dataclass(frozen=True)
class Operator:
    """Who holds a token. The digest, not the token, is what a session remembers."""

    name: str
    token: str = field(default="", repr=False)

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
        values = read_env(SETTINGS, env)
        values.setdefault("secret", derived_secret(values.get("operators", ())))
        return cls(**values).validated()

    def validated(self) -> "DashboardSettings":
        check_table(self, SETTINGS)
        if self.timezone is not None:
            time_zone(self.timezone)  # a name that is no zone stops the start, in one line
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.operators)

    def __repr__(self) -> str:
        """Operators by name (a token is no part of an operator's repr), the secret hidden."""
        return shown(self, SETTINGS)


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


# Every setting of the dashboard: reading, validation, the repr and the README check derive
# from here. A session outlives no working week: a cookie copied off a machine stops opening
# the page.
SETTINGS: tuple[Setting, ...] = (
    Setting("operators", "ICHIDO_DASHBOARD_TOKEN", parse_tokens),
    Setting("secret", "ICHIDO_DASHBOARD_SECRET", secret=True),
    Setting("session_seconds", "ICHIDO_DASHBOARD_SESSION", "duration", 60.0, 7 * 86400.0),
    Setting("refresh_seconds", "ICHIDO_DASHBOARD_REFRESH", "duration", 1.0, 3600.0),
    Setting("timezone", "ICHIDO_DASHBOARD_TIMEZONE"),
)
