"""A tiny versioned migration runner: steps are ``(component, version, statements)``.

Each backend keeps its own list of steps (SQL differs by engine); domain code adds its own
component. A schema behind the code is an error at start, never a silent change, unless the
caller asked to migrate (``ichido migrate``, or the embedded default's zero set-up).
"""

from __future__ import annotations

from typing import Protocol, Sequence

from ichido.errors import SchemaError

Step = tuple[str, int, Sequence[str]]


class Dialect(Protocol):
    name: str

    def current_version(self, component: str) -> int: ...

    def apply(self, component: str, version: int, statements: list[str]) -> None: ...


def pending(dialect: Dialect, steps: Sequence[Step]) -> list[Step]:
    current: dict[str, int] = {}
    behind = []
    for component, version, statements in steps:
        if component not in current:
            current[component] = dialect.current_version(component)
        if version > current[component]:
            behind.append((component, version, statements))
    return behind


def apply(dialect: Dialect, steps: Sequence[Step]) -> list[tuple[str, int]]:
    """Apply every step not yet applied, each in its own transaction; return what ran."""
    done = []
    for component, version, statements in pending(dialect, steps):
        dialect.apply(component, version, list(statements))
        done.append((component, version))
    return done


def check(dialect: Dialect, steps: Sequence[Step]) -> None:
    behind = pending(dialect, steps)
    if behind:
        names = ", ".join(f"{c} v{v}" for c, v, _ in behind)
        raise SchemaError(
            f"the {dialect.name} schema is behind this version of ichido ({names} not applied):"
            " run `ichido migrate`"
        )
