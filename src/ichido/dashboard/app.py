"""The dashboard as a small Starlette app: mount it at ``/dashboard`` in any ASGI app.

Every page needs a session; every POST also needs the session's CSRF token and, when the browser
names one, our own origin. This module is the route table: which URL is which page
(``pages.py``), which action (``retries.py``), and logging in (``login.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ichido.dashboard import login, pages, retries
from ichido.dashboard.render import redact
from ichido.dashboard.settings import DashboardSettings
from ichido.dashboard.site import Site
from ichido.errors import ConfigError, StorageUnavailable
from ichido.inbox import Inbox


def create_dashboard(inbox: Callable[[], Inbox], settings: DashboardSettings | None = None,
                     **options: Any) -> Starlette:
    """The dashboard's ASGI app over one store, with its errors turned into pages. ``options``
    are ``Site``'s: ``database``, ``handlers``, ``panels`` (the application's tabs)."""
    site = Site(inbox, settings or DashboardSettings.from_env(), **options)

    def on(endpoint: Callable[..., Any]) -> Callable[[Request], Any]:
        return functools.partial(endpoint, site)

    app = Starlette(routes=[
        Route("/", on(pages.overview)),
        Route("/login", on(login.login_form), methods=["GET"]),
        Route("/login", on(login.login), methods=["POST"]),
        Route("/logout", on(login.logout), methods=["POST"]),
        Route("/events", on(pages.events)),
        # ``path``: an id may hold ``/`` (links escape it as %2F, which the server decodes)
        Route("/events/{event_id:path}", on(pages.event), methods=["GET"]),
        Route("/events/{event_id:path}/retry", on(retries.retry_one), methods=["POST"]),
        Route("/dead", on(pages.dead)),
        Route("/dead/retry", on(retries.retry_filter), methods=["POST"]),
        Route("/retries/{action_id:str}", on(pages.retry_progress)),
        Route("/replays/{job_id:str}", on(pages.replay_progress)),
        Route("/panels/{name:str}", on(pages.tab)),
        Route("/actions", on(pages.actions)),
        Route("/lang/{lang:str}", on(login.language)),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ])

    def failed(status: int, key: str) -> Callable[[Request, Exception], Any]:
        async def page(request: Request, exc: Exception) -> Response:
            try:
                session = await site.session(request)
            except StorageUnavailable:  # the store is what failed: show the page without it
                session = None
            return site.render(request, "error.html", {
                "session": session, "message_key": key, "detail": redact(str(exc))}, status)
        return page

    app.add_exception_handler(StorageUnavailable, failed(503, "storage"))
    app.add_exception_handler(ConfigError, failed(400, "bad_request"))
    return app
