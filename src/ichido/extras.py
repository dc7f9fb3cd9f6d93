"""The optional libraries of ichido's extras, and the one-line error that names the extra to
install when one is missing.

``pip install ichido`` is the light core: the receiver, the workers and the SQLite default.
PostgreSQL, Redis, the dashboard and AWS are extras (pyproject.toml); the local Stripe and the
example shop are sibling distributions built from this repository (packages/ichido-emulator,
packages/ichido-shop), whose wheels add ``ichido.emulator`` and ``ichido.shop``. Every place
the core is about to reach one asks ``require`` first, so that a missing one is one line
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
}

# The applications, each a distribution of its own (not an extra: an extra cannot point at a
# path in this repository): its subpackage, and what installs it, by name and from a checkout.
SIBLINGS: dict[str, tuple[str, str]] = {
    "emulator": ("ichido.emulator", "pip install ichido-emulator (from a checkout of ichido: "
                 "pip install ./packages/ichido-emulator)"),
    "shop": ("ichido.shop", "pip install ichido-shop (from a checkout of ichido: "
             "pip install ./packages/ichido-emulator ./packages/ichido-shop)"),
}


class MissingExtra(IchidoError):
    """An optional library that this setting or command needs is not installed. ``install``
    is the command that brings it (the message ends with it)."""

    code = "missing_extra"

    def __init__(self, message: str, *, install: str) -> None:
        super().__init__(f"{message}: {install}")
        self.install = install


def require(extra: str, *, needed_by: str) -> None:
    """Import the modules of ``extra`` or raise ``MissingExtra`` naming it.

    ``needed_by`` says what asked for it, as the user wrote it (a setting, a command), so the
    message tells them both why and what to run. ``extra`` may name a sibling (``SIBLINGS``):
    the message then says how to install that distribution."""
    modules: tuple[str, ...]
    if extra in SIBLINGS:
        modules, install = (SIBLINGS[extra][0],), SIBLINGS[extra][1]
    else:
        modules, install = EXTRAS[extra], f"pip install 'ichido[{extra}]'"
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(f"{needed_by} but {module} is not installed",
                               install=install) from None
