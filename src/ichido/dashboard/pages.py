"""The dashboard as a small Starlette app: mount it at ``/dashboard`` in any ASGI app.

Every page needs a session; every POST also needs the session's CSRF token and, when the browser
names one, our own origin. Store reads run in the thread pool, never on the event loop the
receiver shares.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ichido.dashboard import audit, chart, reading, replays, shop_tables
from ichido.dashboard.auth import Session, Sessions, csrf_ok, same_origin
from ichido.dashboard.i18n import LANGUAGES, pick, translator
from ichido.dashboard.render import SECURITY_HEADERS, environment, read_form, redact
from ichido.dashboard.settings import DashboardSettings
from ichido.errors import ConfigError, StorageUnavailable
from ichido.handlers import HandlerRegistry
from ichido.inbox import Inbox

LANG_COOKIE = "ichido_lang"
WAITING = 2  # seconds between reloads of a page that waits for something (a retry, a replay)
log = logging.getLogger("ichido.dashboard")


class Dashboard:
    """The operator page over one store. ``inbox`` and ``database`` are callables so that a
    host app's stores are opened when first needed, not at import."""

    def __init__(self, inbox: Callable[[], Inbox], settings: DashboardSettings, *,
                 database: Callable[[], reading.Store] | None = None,
                 handlers: HandlerRegistry | None = None,
                 fee_report: shop_tables.FeeReport | None = None) -> None:
        self._inbox = inbox
        self._database = database or inbox  # one object plays both roles on an SQL inbox
        self.settings = settings
        self.handlers = handlers
        self.fee_report = fee_report
        self.sessions = Sessions(settings)
        self.samples = chart.CounterSamples()
        self._cache: dict[str, tuple[float, Any]] = {}
        self.templates = environment()
        static = Path(__file__).parent / "static"
        self.app = Starlette(routes=[
            Route("/", self.overview),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/events", self.events),
            Route("/events/{event_id:str}", self.event),
            Route("/events/{event_id:str}/retry", self.retry_one, methods=["POST"]),
            Route("/dead", self.dead),
            Route("/dead/retry", self.retry_filter, methods=["POST"]),
            Route("/retries/{action_id:str}", self.retry_progress),
            Route("/replays/{job_id:str}", self.replay_progress),
            Route("/shop", self.shop),
            Route("/actions", self.actions),
            Route("/lang/{lang:str}", self.language),
            Mount("/static", StaticFiles(directory=static), name="static"),
        ])

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        await self.app(scope, receive, send)

    @property
    def inbox(self) -> Inbox:
        return self._inbox()

    @property
    def db(self) -> reading.Store:
        return self._database()

    # -- pages -------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        if (session := self._session(request)) is None:
            return self._to_login(request)
        data = await self._cached("overview", 5.0, self._read_overview)
        return self._page(request, session, "overview.html",
                          refresh=self.settings.refresh_seconds, **data)

    def _read_overview(self) -> dict[str, Any]:
        now = time.time()
        summary = reading.overview(self.inbox, self.db, now)
        self.samples.add(summary["stats"], now)
        charts = {}
        for span in ("hour", "day"):
            found = reading.buckets(self.db, span, now)
            series = {"deliveries": found["series"]["deliveries"],
                      "duplicates": self.samples.per_bucket(found["start"], found["width"],
                                                            found["count"]),
                      "failures": found["series"]["failures"]}
            charts[span] = chart.lines(series) | {"start": found["start"], "end": now}
        return summary | {"charts": charts, "sampled_since": self.samples.since(),
                          "actions": audit.recent(self.db, 5),
                          "reconciler": reading.reconciler_state(self.db)}

    async def events(self, request: Request) -> Response:
        if (session := self._session(request)) is None:
            return self._to_login(request)
        chosen = reading.ListFilter.from_query(request.query_params)
        cursor = request.query_params.get("after") or None
        page = await run_in_threadpool(reading.events_page, self.inbox, chosen, cursor=cursor,
                                       limit=_page_size(request))
        return self._page(request, session, "events.html", page=page,
                          statuses=reading.STATUSES, first_query=urlencode(chosen.query()),
                          next_query=self._query(chosen, page, request))

    async def event(self, request: Request) -> Response:
        if (session := self._session(request)) is None:
            return self._to_login(request)
        event_id = request.path_params["event_id"]
        record = await run_in_threadpool(self.inbox.get, event_id)
        if record is None:
            return self._page(request, session, "error.html", status_code=404,
                              message_key="not_found")
        payload = _payload(record.body)
        obj = ((payload.get("data") or {}).get("object") or {}) if isinstance(payload, dict) else {}
        payment_intent = obj.get("payment_intent") if obj.get("object") != "payment_intent" \
            else obj.get("id")
        order, others = await run_in_threadpool(self._related, record.object_id,
                                                payment_intent if isinstance(payment_intent, str)
                                                else None)
        handlers = None if self.handlers is None else [
            f"{h.__module__}.{h.__qualname__}" for h in self.handlers.for_type(record.type)]
        pretty = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)
        going = record.status in reading.DUE
        return self._page(request, session, "event.html", refresh=WAITING if going else 0,
                          record=record, payload=pretty,
                          obj=obj, order=order, others=others, handlers=handlers,
                          retried=request.query_params.get("retried"))

    def _related(self, object_id: str | None, payment_intent: str | None) -> tuple[Any, Any]:
        return (shop_tables.order_for(self.db, payment_intent),
                reading.same_object(self.inbox, object_id))

    async def dead(self, request: Request) -> Response:
        if (session := self._session(request)) is None:
            return self._to_login(request)
        chosen = reading.with_status(reading.ListFilter.from_query(request.query_params), "dead")
        cursor = request.query_params.get("after") or None
        page = await run_in_threadpool(reading.events_page, self.inbox, chosen, cursor=cursor)
        return self._page(request, session, "dead.html", page=page,
                          first_query=urlencode(chosen.query()),
                          next_query=self._query(chosen, page, request))

    async def retry_progress(self, request: Request) -> Response:
        if (session := self._session(request)) is None:
            return self._to_login(request)
        action_id = request.path_params["action_id"]
        action = await run_in_threadpool(audit.find, self.db, action_id)
        if action is None:
            return self._page(request, session, "error.html", status_code=404,
                              message_key="not_found")
        found = await run_in_threadpool(audit.progress, self.db, action_id)
        return self._page(request, session, "retry.html",
                          refresh=WAITING if found["going"] > 0 else 0,
                          progress=found, action=action)

    async def shop(self, request: Request) -> Response:
        if (session := self._session(request)) is None:
            return self._to_login(request)
        data = await self._cached("shop", 5.0, self._read_shop)
        # The fee report asks Stripe for balance transactions: minutes old is fresh enough.
        fees = await self._cached("fees", 300.0, self._read_fees)
        return self._page(request, session, "shop.html", fees=fees, **data)

    def _read_shop(self) -> dict[str, Any]:
        present = shop_tables.has_shop(self.db)
        state = shop_tables.shop_state(self.db, time.time()) if present else {}
        return {"present": present, "state": state}

    def _read_fees(self) -> dict[str, Any] | None:
        try:
            rows = None if self.fee_report is None else self.fee_report()
        except Exception as exc:  # the app's hook (Stripe's API behind it) must not break the page
            log.warning("the fee report failed", exc_info=True)
            return {"error": f"{type(exc).__name__}: {exc}"}
        if rows is None:
            return None
        rows = list(rows)
        limits = [float(row["max_share"]) for row in rows if row.get("max_share") is not None]
        return chart.bars(shop_tables.fee_shares(rows), max(limits) if limits else None)

    async def actions(self, request: Request) -> Response:
        if (session := self._session(request)) is None:
            return self._to_login(request)
        found = await run_in_threadpool(audit.recent, self.db, 200)
        return self._page(request, session, "actions.html", actions=found)

    # -- actions -----------------------------------------------------------------------------

    async def retry_one(self, request: Request) -> Response:
        session, form, refused = await self._action(request)
        if refused is not None:
            return refused
        event_id = request.path_params["event_id"]
        await run_in_threadpool(self._requeue, session, request, "retry", event_id, [[event_id]])
        return RedirectResponse(self._url(request, f"/events/{_quote(event_id)}?retried=1"), 303)

    async def retry_filter(self, request: Request) -> Response:
        """Every dead letter the filter matches: a replay job (``ichido replay``'s, paged and
        resumable) that runs on in the background; free text on the id, which replays cannot
        select by, requeues the ids the listing finds, a page at a time."""
        session, form, refused = await self._action(request)
        if refused is not None:
            return refused
        chosen = reading.with_status(reading.ListFilter.from_query(form), "dead")
        if not chosen.q:
            job_id = await run_in_threadpool(self._replay, session, request, chosen)
            return RedirectResponse(self._url(request, f"/replays/{job_id}"), 303)
        pages = await run_in_threadpool(reading.matching_ids, self.inbox, chosen)
        action_id = await run_in_threadpool(self._requeue, session, request, "retry_filter",
                                            urlencode(chosen.query()), pages)
        return RedirectResponse(self._url(request, f"/retries/{action_id}"), 303)

    def _replay(self, session: Session, request: Request, chosen: reading.ListFilter) -> str:
        from ichido.recovery.replay import Replay

        job = Replay.start(self.inbox, chosen.where(time.time()),
                           actor=f"{session.who} (dashboard, {_client(request)})")
        audit.record(self.db, audit.Action(
            id=secrets.token_hex(8), at=time.time(), who=session.who, session=session.sid,
            client=_client(request), action="replay", target=job.record.id,
            count=job.total()))
        threading.Thread(target=_run_replay, args=(job,), daemon=True,
                         name=f"ichido-dashboard-{job.record.id}").start()
        self._cache.clear()
        return job.record.id

    async def replay_progress(self, request: Request) -> Response:
        if (session := self._session(request)) is None:
            return self._to_login(request)
        found = await run_in_threadpool(replays.progress, self.inbox,
                                        request.path_params["job_id"])
        if found is None:
            return self._page(request, session, "error.html", status_code=404,
                              message_key="not_found")
        going = found["record"].state == "running" or found["in_flight"] > 0
        return self._page(request, session, "replay.html",
                          refresh=WAITING if going else 0, **found)

    def _requeue(self, session: Session, request: Request, name: str, target: str,
                 pages: list[list[str]]) -> str:
        """Requeue page by page, then record who did it with the ids it covered."""
        requeued: list[str] = []
        count = 0
        for ids in pages:
            done = self.inbox.requeue(ids, statuses=("dead",))
            if done:
                count += done
                requeued += ids
        action = audit.Action(id=secrets.token_hex(8), at=time.time(), who=session.who,
                              session=session.sid, client=_client(request), action=name,
                              target=target, count=count)
        audit.record(self.db, action, requeued)
        self._cache.clear()
        return action.id

    async def login_form(self, request: Request) -> Response:
        return self._render(request, "login.html", {"error": None})

    async def login(self, request: Request) -> Response:
        client = _client(request)
        form = await read_form(request)
        if form is None or not same_origin(request):
            return self._render(request, "login.html", {"error": "bad_request"}, 400)
        if self.sessions.too_many_failures(client):
            return self._render(request, "login.html", {"error": "slow_down"}, 429)
        operator = self.sessions.operator_for(form.get("token", ""))
        if operator is None:
            self.sessions.failed(client)
            audit.log.warning("dashboard login refused for %s", client)
            return self._render(request, "login.html", {"error": "bad_token"}, 401)
        response = RedirectResponse(self._url(request, "/"), 303)
        session = self.sessions.start(response, operator, request)
        await run_in_threadpool(audit.record, self.db, audit.Action(
            id=secrets.token_hex(8), at=time.time(), who=session.who, session=session.sid,
            client=client, action="login", target=None, count=0))
        return response

    async def logout(self, request: Request) -> Response:
        session, _form, refused = await self._action(request)
        if refused is not None:
            return refused
        response = RedirectResponse(self._url(request, "/login"), 303)
        self.sessions.end(response, request)
        return response

    async def language(self, request: Request) -> Response:
        lang = request.path_params["lang"]
        response = RedirectResponse(self._url(request, "/"), 303)
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True,
                                samesite="strict", path=request.scope.get("root_path") or "/")
        return response

    # -- plumbing ----------------------------------------------------------------------------

    def _session(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies)

    async def _action(self, request: Request) -> tuple[Any, dict[str, str], Response | None]:
        """The session and form of a POST, or the refusal: no session, a foreign origin, or a
        CSRF token that is missing or not this session's."""
        session = self._session(request)
        if session is None:
            return None, {}, Response("log in first", status_code=401, headers=SECURITY_HEADERS)
        form = await read_form(request)
        if form is None or not same_origin(request) or not csrf_ok(session, form):
            return session, {}, self._page(request, session, "error.html", status_code=403,
                                           message_key="csrf")
        return session, form, None

    def _page(self, request: Request, session: Session, name: str, *, status_code: int = 200,
              refresh: int = 0, **context: Any) -> Response:
        """``refresh``: seconds after which the browser reloads the page (0: never)."""
        return self._render(request, name, context | {"session": session, "refresh": refresh},
                            status_code)

    def _render(self, request: Request, name: str, context: dict[str, Any],
                status_code: int = 200) -> Response:
        lang = pick(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        base = (request.scope.get("root_path") or "").rstrip("/")
        html = self.templates.get_template(name).render(
            context | {"t": translator(lang), "lang": lang, "base": base,
                       "other_lang": "en" if lang == "ja" else "ja", "path": request.url.path})
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def _to_login(self, request: Request) -> Response:
        return RedirectResponse(self._url(request, "/login"), 303)

    def _url(self, request: Request, path: str) -> str:
        return (request.scope.get("root_path") or "").rstrip("/") + path

    def _query(self, chosen: reading.EventFilter, page: reading.Page,
               request: Request) -> str | None:
        if page.next_cursor is None:
            return None
        size = {"limit": request.query_params["limit"]} if "limit" in request.query_params else {}
        return urlencode(chosen.query() | size | {"after": page.next_cursor})

    async def _cached(self, key: str, seconds: float, read: Callable[[], Any]) -> Any:
        """Many open pages polling cost one set of reads per ``seconds``, not one each."""
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < seconds:
            return hit[1]
        value = await run_in_threadpool(read)
        self._cache[key] = (time.monotonic(), value)
        return value



def create_dashboard(inbox: Callable[[], Inbox], settings: DashboardSettings | None = None,
                     **options: Any) -> Starlette:
    """The dashboard's ASGI app, with its errors turned into pages."""
    dashboard = Dashboard(inbox, settings or DashboardSettings.from_env(), **options)

    def failed(status: int, key: str) -> Callable[[Request, Exception], Any]:
        async def page(request: Request, exc: Exception) -> Response:
            return dashboard._render(request, "error.html", {
                "session": dashboard._session(request), "message_key": key,
                "detail": redact(str(exc))}, status)
        return page

    unavailable, bad_filter = failed(503, "storage"), failed(400, "bad_request")

    dashboard.app.add_exception_handler(StorageUnavailable, unavailable)
    dashboard.app.add_exception_handler(ConfigError, bad_filter)
    return dashboard.app


def _run_replay(job: Any) -> None:
    """A replay started from the page, to its end; it is resumable (``ichido replay --resume``)
    should this process stop first."""
    try:
        job.run()
    except Exception:  # a thread of its own: nobody else would see the failure
        log.exception("replay %s failed; resume it with ichido replay", job.record.id)


def _payload(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _quote(event_id: str) -> str:
    return quote(event_id, safe="")


def _page_size(request: Request, default: int = 50) -> int:
    try:
        return max(1, min(200, int(request.query_params.get("limit") or default)))
    except ValueError:
        return default


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
