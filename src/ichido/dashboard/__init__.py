"""The operator page: see, search and fix stored events from a browser.

It is off unless ``ICHIDO_DASHBOARD_TOKEN`` is set. It reads through the inbox interface the CLI
uses (plus short, indexed SQL reads where that interface has nothing yet), never writes except
for an operator's action, and never renders a secret. Jinja2 is imported only when it is served.
"""

from __future__ import annotations

from ichido.dashboard.audit import DASHBOARD_SCHEMA
from ichido.dashboard.settings import DashboardSettings

__all__ = ["DASHBOARD_SCHEMA", "DashboardSettings", "create_dashboard", "routes", "schema"]


def create_dashboard(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See ``ichido.dashboard.pages.create_dashboard`` (imported here lazily: Jinja2)."""
    from ichido.dashboard.pages import create_dashboard as create

    return create(*args, **kwargs)


def schema(settings: DashboardSettings | None = None) -> list:
    """The dashboard's tables when it is on (``ICHIDO_DASHBOARD_TOKEN`` set), else none."""
    settings = settings or DashboardSettings.from_env()
    return list(DASHBOARD_SCHEMA) if settings.enabled else []


def routes(app, settings: DashboardSettings | None = None) -> list:  # type: ignore[no-untyped-def]
    """``[Mount("/dashboard", …)]`` for an ``ichido.App`` when the dashboard is on, else ``[]``.

    The page reads the app's own inbox and knows its handlers; ``app.fee_report`` (a callable
    returning fee rows per payment method, ``{"method", "gross", "fees"}`` and optionally the
    shop's ``"max_share"``, which the shop sets) feeds the fee chart.
    """
    settings = settings or DashboardSettings.from_env()
    if not settings.enabled:
        return []
    from starlette.routing import Mount

    def fee_report():  # type: ignore[no-untyped-def]
        report = getattr(app, "fee_report", None)
        return None if report is None else report()

    page = create_dashboard(lambda: app.inbox, settings, handlers=app.handlers,
                            fee_report=fee_report)
    return [Mount("/dashboard", app=page)]
