"""A setting as one row of a table: the field it fills, the variable it is read from, how its
text is read, the values it may take, whether it is a secret, and the page that documents it.

Reading the environment, refusing values out of bounds, the ``repr`` that hides secrets and the
documentation check (tests) all derive from a table of rows, so a setting's name is spelled
once. The core's table is ``ichido.config.SETTINGS``; the dashboard, AWS, recovery and the shop
keep theirs beside their settings classes, built of the same rows.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from ichido.errors import ConfigError

# The public API (docs/api.md): what an application builds its own settings with.
__all__ = ["Setting", "check_table", "from_env", "parse_duration", "parse_size", "read_env",
           "read_text", "shown"]

# text: as given; list: comma- (or, in a file, line-) separated; upper: text in capitals; or a
# parser of the area's own (the dashboard's tokens).
Kind = Literal["text", "int", "float", "duration", "size", "list", "upper"] | Callable[[str], Any]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


@dataclass(frozen=True)
class Setting:
    """One knob. ``low``/``high`` bound a number, both inclusive unless ``low_open``; ``says``
    words the refusal after the variable's name where the bounds' own wording would not do.
    ``file_env`` names a variable that gives a file holding the value instead (kept out of
    ``ps``). An empty variable counts as unset unless ``read_empty``."""

    field: str
    env: str
    kind: Kind = "text"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    says: str | None = None
    secret: bool = False
    doc: str = "README.md"
    file_env: str | None = None
    read_empty: bool = False

    @property
    def integer(self) -> bool:
        return self.kind in ("int", "size")

    def parse(self, text: str) -> Any:
        if callable(self.kind):
            return self.kind(text)
        if self.kind == "duration":
            return parse_duration(text)
        if self.kind == "size":
            return parse_size(text)
        if self.kind == "int":
            return parse_int(self.env, text)
        if self.kind == "float":
            return parse_float(self.env, text)
        if self.kind == "list":
            return split_list(text)
        return text.upper() if self.kind == "upper" else text

    def check(self, value: Any) -> None:
        """Refuse a number out of bounds (NaN and infinities included), from the environment or
        from code alike."""
        if self.low is None and self.high is None:
            return
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            raise ConfigError(f"{self.env} must be a number, not {value!r}")
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        above_low = low < value if self.low_open else low <= value
        if math.isfinite(value) and above_low and value <= high:
            return
        if self.says is not None:
            raise ConfigError(f"{self.env} {self.says}")
        raise ConfigError(f"{self.env} must be between {low:.15g} and {high:.15g}, not {value:.15g}"
                          f"{' (0 would switch the protection off)' if value == 0 else ''}")


Table = Sequence[Setting]


def read_env(table: Table, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fields ``env`` (default: the process environment) sets, parsed."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for row in table:
        if row.file_env and env.get(row.file_env):
            if env.get(row.env):
                raise ConfigError(f"set {row.env} or {row.file_env}, not both")
            what = f"the {'secret ' if row.secret else ''}file ({row.file_env})"
            values[row.field] = row.parse(read_text(env[row.file_env], what))
        elif row.env in env if row.read_empty else env.get(row.env):
            values[row.field] = row.parse(env[row.env])
    return values


def from_env(cls: Any, table: Table, env: Mapping[str, str] | None,
             overrides: Mapping[str, Any]) -> Any:
    """A settings dataclass from ``table``, the environment and non-None ``overrides``,
    validated (its ``validated`` checks the table's bounds and any rule across fields)."""
    values = read_env(table, env)
    values.update({k: v for k, v in overrides.items() if v is not None})
    for row in table:  # a list given in code as one string
        if row.kind == "list" and isinstance(values.get(row.field), str):
            values[row.field] = split_list(values[row.field])
    return cls(**values).validated()


def check_table(settings: Any, table: Table) -> None:
    for row in table:
        row.check(getattr(settings, row.field))


def shown(settings: Any, table: Table) -> str:
    """A settings dataclass as ``Name(field=value, ...)``, its secret fields as ``***`` and
    passwords cut out of URLs: secrets never reach a log or a traceback (I6)."""
    secret = {row.field for row in table if row.secret}
    parts = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.name in secret and value:
            value = "***"
        elif field.name.endswith("_url") and isinstance(value, str):
            value = redact_url(value)
        parts.append(f"{field.name}={value!r}")
    return f"{type(settings).__name__}({', '.join(parts)})"


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


def parse_int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {text!r}") from None


def parse_float(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None


def split_list(text: str) -> tuple[str, ...]:
    """Comma- (or, in a file, line-) separated entries: ``whsec_`` secrets (two while rolling
    one), trusted proxies."""
    return tuple(part for part in re.split(r"[,\s]+", text) if part)


def read_text(path: "os.PathLike[str] | str", what: str) -> str:
    """A configuration file's text, or a ``ConfigError`` naming ``what`` it was meant to be."""
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``."""
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url
