"""The dashboard inside an ``ichido.App``: its routes when ``ICHIDO_DASHBOARD_TOKEN`` is set."""

from __future__ import annotations

from typing import Any

from ichido.dashboard.settings import DashboardSettings
from ichido.extras import require


def routes(app: Any, settings: DashboardSettings | None = None) -> list:
    """``[Mount("/dashboard", …)]`` for an ``ichido.App`` when the dashboard is on, else ``[]``.

    The page reads the app's own inbox, knows its handlers, and shows the tabs and panels the
    application registers on ``app.dashboard`` (``ichido.dashboard.panels``), whenever it
    registers them: they are read on every page.
    """
    settings = settings or DashboardSettings.from_env()
    if not settings.enabled:
        return []
    from starlette.routing import Mount

    require("dashboard", needed_by="ICHIDO_DASHBOARD_TOKEN is set")

    from ichido.dashboard.app import create_dashboard

    def started() -> Any:
        app.start()  # idempotent; a host app may never run ichido's lifespan (as the receiver)
        return app

    page = create_dashboard(lambda: started().inbox, settings,
                            database=lambda: started().database, handlers=app.handlers,
                            panels=app.dashboard)
    return [Mount("/dashboard", app=page)]
