"""What every page and action of the dashboard shares: the stores it reads, the operator's
session, the checks on a POST, rendering in the operator's language, URLs under wherever the
dashboard is mounted, and a short cache of the reads many open pages repeat.

Store reads run in the thread pool, never on the event loop the receiver shares.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ichido.dashboard import chart, reading
from ichido.dashboard.panels import Panels, time_zone
from ichido.dashboard.auth import Session, Sessions, csrf_ok, same_origin
from ichido.dashboard.i18n import pick, translator
from ichido.dashboard.render import SECURITY_HEADERS, environment, read_form
from ichido.dashboard.settings import DashboardSettings
from ichido.handlers import HandlerRegistry
from ichido.inbox import Inbox

LANG_COOKIE = "ichido_lang"


class Site:
    """The operator page over one store. ``inbox`` and ``database`` are callables so that a
    host app's stores are opened when first needed, not at import. ``panels`` are the
    application's (``app.dashboard``), read on every page: one may be added after this."""

    def __init__(self, inbox: Callable[[], Inbox], settings: DashboardSettings, *,
                 database: Callable[[], reading.Store] | None = None,
                 handlers: HandlerRegistry | None = None,
                 panels: Panels | None = None) -> None:
        self._inbox = inbox
        # without a database, the inbox stands for it (no Inbox has reading(): issue 21's seams)
        self._database: Callable[[], Any] = database or inbox
        self.settings = settings
        self.handlers = handlers
        self.panels = panels or Panels()
        self.sessions = Sessions(settings, lambda: self._database())  # the fallback's Any
        self.samples = chart.CounterSamples()
        self._cache: dict[str, tuple[float, Any]] = {}
        self.templates = environment()

    @property
    def inbox(self) -> Inbox:
        return self._inbox()

    @property
    def db(self) -> reading.Store:
        return self._database()

    @property
    def zone(self) -> dt.tzinfo:
        """Where every time on the page is shown: the setting, else the application's, else
        UTC (both names were checked when they were set)."""
        return time_zone(self.settings.timezone or self.panels.timezone or "UTC")

    async def session(self, request: Request) -> Session | None:
        """The request's live session (read from the store on every request)."""
        return await run_in_threadpool(self.sessions.read, request.cookies)

    async def action(self, request: Request) -> tuple[Any, dict[str, str], Response | None]:
        """The session and form of a POST, or the refusal: no session, a foreign origin, or a
        CSRF token that is missing or not this session's."""
        session = await self.session(request)
        if session is None:
            return None, {}, Response("log in first", status_code=401, headers=SECURITY_HEADERS)
        form = await read_form(request)
        if form is None or not same_origin(request) or not csrf_ok(session, form):
            return session, {}, self.page(request, session, "error.html", status_code=403,
                                          message_key="csrf")
        return session, form, None

    def page(self, request: Request, session: Session, name: str, *, status_code: int = 200,
             refresh: int = 0, **context: Any) -> Response:
        """``refresh``: seconds after which the browser reloads the page (0: never)."""
        return self.render(request, name, context | {"session": session, "refresh": refresh},
                           status_code)

    def render(self, request: Request, name: str, context: dict[str, Any],
               status_code: int = 200) -> Response:
        lang = pick(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        html = self.templates.get_template(name).render(
            context | {"t": translator(lang), "lang": lang, "base": self.url(request, ""),
                       "other_lang": "en" if lang == "ja" else "ja", "path": request.url.path,
                       "zone": self.zone, "tabs": self.panels.tabs})
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def to_login(self, request: Request) -> Response:
        return self.redirect(request, "/login")

    def redirect(self, request: Request, path: str) -> RedirectResponse:
        """After a POST, or to the login: 303, so the browser follows with a GET."""
        return RedirectResponse(self.url(request, path), 303)

    def url(self, request: Request, path: str) -> str:
        return (request.scope.get("root_path") or "").rstrip("/") + path

    async def cached(self, key: str, seconds: float, read: Callable[[], Any]) -> Any:
        """Many open pages polling cost one set of reads per ``seconds``, not one each."""
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < seconds:
            return hit[1]
        value = await run_in_threadpool(read)
        self._cache[key] = (time.monotonic(), value)
        return value

    def forget_cached(self) -> None:
        """After an operator's action: the next page shows its effect, not a cached read."""
        self._cache.clear()


def client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
