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


def apply(dialect: Dialect, steps: Sequence[Step], *,
          errors: tuple[type[Exception], ...] = ()) -> list[tuple[str, int]]:
    """Apply every step not yet applied, each in its own transaction; return what ran.

    ``errors``: the engine's own exceptions. One raised by a step becomes a ``SchemaError``
    naming that step, so bad SQL in a step is not taken for an unreachable database.
    """
    done = []
    for component, version, statements in pending(dialect, steps):
        try:
            dialect.apply(component, version, list(statements))
        except errors as exc:
            raise failed(dialect.name, exc, (component, version)) from exc
        done.append((component, version))
    return done


def failed(engine: str, exc: BaseException, step: tuple[str, int] | None = None) -> SchemaError:
    """The error for an engine error met while migrating or checking (code
    ``migration_failed``): the step when known, and the engine's first line only, so that
    the CLI prints one line."""
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    if step is None:
        return SchemaError(f"migrating or checking the {engine} schema failed: {reason}",
                           code="migration_failed")
    component, version = step
    return SchemaError(f"migration step {component} v{version} failed on {engine}: {reason}",
                       code="migration_failed")


def check(dialect: Dialect, steps: Sequence[Step]) -> None:
    behind = pending(dialect, steps)
    if behind:
        names = ", ".join(f"{c} v{v}" for c, v, _ in behind)
        raise SchemaError(
            f"the {dialect.name} schema is behind this version of ichido ({names} not applied):"
            " run `ichido migrate`"
        )
