"""``ichido dashboard``: the operator page alone, with no receiver and no workers, against any
store (a remote PostgreSQL, a copy of the SQLite file)."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from ichido.dashboard.mount import Dashboard
from ichido.dashboard.settings import DashboardSettings
from ichido.errors import ConfigError


def standalone(service: Any, settings: DashboardSettings | None = None) -> Starlette:
    """An ASGI app serving ``service``'s dashboard at ``/dashboard`` (``/`` redirects there):
    the one installed in ``service``, installed now unless it was."""
    settings = settings or DashboardSettings.from_env()
    if not settings.enabled:
        raise ConfigError("ICHIDO_DASHBOARD_TOKEN is not set: the dashboard stays off without"
                          " a token", code="missing_dashboard_token")
    dashboard = service.install(Dashboard(settings))

    async def home(_request: Request) -> RedirectResponse:
        return RedirectResponse("/dashboard/", 303)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await service.shutdown()

    return Starlette(routes=[Route("/", home), *dashboard.routes], lifespan=lifespan)
