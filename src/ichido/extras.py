"""The optional libraries of ichido's extras, and the one-line error that names the extra to
install when one is missing.

``pip install ichido`` is the light core: the receiver, the workers and the SQLite default.
PostgreSQL, Redis, the dashboard, AWS, the local Stripe and the example shop are extras
(pyproject.toml). Every place the core is
about to reach an optional library asks ``require`` first, so that a missing one is one line
(``error [missing_extra] ICHIDO_REDIS_URL is set but redis is not installed: pip install
'ichido[redis]'``), never an ImportError traceback from deep inside a storage module.
"""

from __future__ import annotations

import importlib

from ichido.errors import IchidoError

# Each extra and the modules it brings (the import names, not the distribution names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg", "psycopg_pool"),
    "redis": ("redis",),
    "dashboard": ("jinja2", "itsdangerous"),
    "aws": ("boto3", "botocore", "mangum"),
    "aws-local": ("moto",),
    # The applications: nothing beyond the core today, but their own packages, which a build
    # may leave out (the core wheel without them); a command of theirs then names the extra.
    "emulator": ("ichido.emulator",),
    "shop": ("ichido.shop",),
}


class MissingExtra(IchidoError):
    """An optional library that this setting or command needs is not installed."""

    code = "missing_extra"


def require(extra: str, *, needed_by: str) -> None:
    """Import the modules of ``extra`` or raise ``MissingExtra`` naming it.

    ``needed_by`` says what asked for it, as the user wrote it (a setting, a command), so the
    message tells them both why and what to run."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(f"{needed_by} but {module} is not installed: "
                               f"pip install 'ichido[{extra}]'") from None
