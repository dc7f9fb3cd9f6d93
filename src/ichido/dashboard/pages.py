"""The dashboard's pages: what an operator reads (the overview, events, one event, dead
letters, the application's own tabs, the audit log, and the progress of a retry or a replay).
None of them writes; each needs a session and otherwise sends the browser to the login.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ichido.dashboard import audit, chart, panels, reading, replays
from ichido.dashboard.site import Site

WAITING = 2  # seconds between reloads of a page that waits for something (a retry, a replay)
log = logging.getLogger("ichido.dashboard")


async def overview(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    data = await site.cached("overview", 5.0, lambda: _read_overview(site))
    return site.page(request, session, "overview.html",
                     refresh=int(site.settings.refresh_seconds), **data)


def _read_overview(site: Site) -> dict[str, Any]:
    now = time.time()
    summary = reading.overview(site.inbox, site.db, now)
    site.samples.add(summary["stats"], now)
    charts = {}
    for span in ("hour", "day"):
        found = reading.buckets(site.db, span, now)
        series = {"deliveries": found["series"]["deliveries"],
                  "duplicates": site.samples.per_bucket(found["start"], found["width"],
                                                        found["count"]),
                  "failures": found["series"]["failures"]}
        charts[span] = chart.lines(series) | {"start": found["start"], "end": now}
    return summary | {"charts": charts, "sampled_since": site.samples.since(),
                      "actions": audit.recent(site.db, 5),
                      "reconciler": reading.reconciler_state(site.db)}


async def events(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    chosen = reading.ListFilter.from_query(request.query_params)
    cursor = request.query_params.get("after") or None
    page = await run_in_threadpool(reading.events_page, site.inbox, chosen, cursor=cursor,
                                   limit=_page_size(request), zone=site.zone)
    return site.page(request, session, "events.html", page=page,
                     statuses=reading.STATUSES, first_query=urlencode(chosen.query()),
                     next_query=_next_query(chosen, page, request))


async def event(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    event_id = request.path_params["event_id"]
    record = await run_in_threadpool(site.inbox.get, event_id)
    if record is None:
        return site.page(request, session, "error.html", status_code=404,
                         message_key="not_found")
    payload = _payload(record.body)
    obj = ((payload.get("data") or {}).get("object") or {}) if isinstance(payload, dict) else {}
    extra, others = await run_in_threadpool(_related, site, record.object_id, payload)
    handlers = None if site.handlers is None else [
        f"{h.__module__}.{h.__qualname__}" for h in site.handlers.for_type(record.type)]
    pretty = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)
    going = record.status in reading.DUE
    return site.page(request, session, "event.html", refresh=WAITING if going else 0,
                     record=record, payload=pretty,
                     obj=obj, extra=extra, others=others, handlers=handlers,
                     retried=request.query_params.get("retried"))


def _related(site: Site, object_id: str | None, payload: Any) -> tuple[Any, Any]:
    """What the application knows of the event (its event panels; none for a pruned body),
    and the other events of its object."""
    extra = [] if not isinstance(payload, dict) else [
        section for read in site.panels.event_panels
        for section in _read_panel(site, read, payload)]
    return extra, reading.same_object(site.inbox, object_id)


async def dead(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    chosen = reading.with_status(reading.ListFilter.from_query(request.query_params), "dead")
    cursor = request.query_params.get("after") or None
    page = await run_in_threadpool(reading.events_page, site.inbox, chosen, cursor=cursor,
                                   zone=site.zone)
    return site.page(request, session, "dead.html", page=page,
                     first_query=urlencode(chosen.query()),
                     next_query=_next_query(chosen, page, request))


async def retry_progress(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    action_id = request.path_params["action_id"]
    action = await run_in_threadpool(audit.find, site.db, action_id)
    if action is None:
        return site.page(request, session, "error.html", status_code=404,
                         message_key="not_found")
    found = await run_in_threadpool(audit.progress, site.db, action_id)
    return site.page(request, session, "retry.html",
                     refresh=WAITING if found["going"] > 0 else 0,
                     progress=found, action=action)


async def replay_progress(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    found = await run_in_threadpool(replays.progress, site.inbox,
                                    request.path_params["job_id"])
    if found is None:
        return site.page(request, session, "error.html", status_code=404,
                         message_key="not_found")
    going = found["record"].state == "running" or found["in_flight"] > 0
    return site.page(request, session, "replay.html",
                     refresh=WAITING if going else 0, **found)


async def tab(site: Site, request: Request) -> Response:
    """One of the application's tabs (``app.dashboard.tab``): its panels' sections, each
    panel's read kept for its own ``every`` seconds."""
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    name = request.path_params["name"]
    if name not in site.panels.tabs:
        return site.page(request, session, "error.html", status_code=404,
                         message_key="not_found")
    sections: list[dict[str, Any]] = []
    for panel in site.panels.on(name):
        sections += await site.cached(f"panel:{id(panel)}", panel.every,
                                      functools.partial(_read_panel, site, panel.read))
    return site.page(request, session, "panel.html", tab=name, title=site.panels.tabs[name],
                     sections=sections)


def _read_panel(site: Site, read: Any, *args: Any) -> list[dict[str, Any]]:
    """An application's reader, its sections ready to draw. It is the application's code
    (a remote API behind it, maybe): what it raises is shown in its place, redacted, and the
    rest of the page stays up."""
    view = panels.View(db=site.db, now=time.time(), zone=site.zone)
    try:
        return [_drawn(section) for section in read(view, *args)]
    except Exception as exc:
        log.warning("the dashboard panel %s failed", getattr(read, "__qualname__", read),
                    exc_info=True)
        return [{"kind": "failed", "error": f"{type(exc).__name__}: {exc}"}]


def _drawn(section: Any) -> dict[str, Any]:
    if isinstance(section, panels.Bars):
        shares = [(str(label), float(share), str(detail))
                  for label, share, detail in section.bars]
        return {"kind": "bars", "section": section, "chart": chart.bars(shares, section.limit)}
    kinds = {panels.Table: "table", panels.Facts: "facts", panels.Note: "note"}
    if type(section) not in kinds:
        raise TypeError(f"not a dashboard section: {type(section).__name__} (Table, Bars,"
                        " Facts or Note)")
    return {"kind": kinds[type(section)], "section": section}


async def actions(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    found = await run_in_threadpool(audit.recent, site.db, 200)
    return site.page(request, session, "actions.html", actions=found)


def _next_query(chosen: reading.ListFilter, page: reading.Page,
                request: Request) -> str | None:
    if page.next_cursor is None:
        return None
    size = {"limit": request.query_params["limit"]} if "limit" in request.query_params else {}
    return urlencode(chosen.query() | size | {"after": page.next_cursor})


def _payload(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _page_size(request: Request, default: int = 50) -> int:
    try:
        return max(1, min(200, int(request.query_params.get("limit") or default)))
    except ValueError:
        return default
