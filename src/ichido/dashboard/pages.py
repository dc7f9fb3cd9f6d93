"""The dashboard's pages: what an operator reads (the overview, events, one event, dead
letters, the shop, the audit log, and the progress of a retry or a replay). None of them writes;
each needs a session and otherwise sends the browser to the login.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ichido.dashboard import audit, chart, reading, replays, shop_tables
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
                                   limit=_page_size(request))
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
    payment_intent = obj.get("payment_intent") if obj.get("object") != "payment_intent" \
        else obj.get("id")
    order, others = await run_in_threadpool(_related, site, record.object_id,
                                            payment_intent if isinstance(payment_intent, str)
                                            else None)
    handlers = None if site.handlers is None else [
        f"{h.__module__}.{h.__qualname__}" for h in site.handlers.for_type(record.type)]
    pretty = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)
    going = record.status in reading.DUE
    return site.page(request, session, "event.html", refresh=WAITING if going else 0,
                     record=record, payload=pretty,
                     obj=obj, order=order, others=others, handlers=handlers,
                     retried=request.query_params.get("retried"))


def _related(site: Site, object_id: str | None, payment_intent: str | None) -> tuple[Any, Any]:
    return (shop_tables.order_for(site.db, payment_intent),
            reading.same_object(site.inbox, object_id))


async def dead(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    chosen = reading.with_status(reading.ListFilter.from_query(request.query_params), "dead")
    cursor = request.query_params.get("after") or None
    page = await run_in_threadpool(reading.events_page, site.inbox, chosen, cursor=cursor)
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


async def shop(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    data = await site.cached("shop", 5.0, lambda: _read_shop(site))
    # The fee report asks Stripe for balance transactions: minutes old is fresh enough.
    fees = await site.cached("fees", 300.0, lambda: _read_fees(site))
    return site.page(request, session, "shop.html", fees=fees, **data)


def _read_shop(site: Site) -> dict[str, Any]:
    present = shop_tables.has_shop(site.db)
    state = shop_tables.shop_state(site.db, time.time()) if present else {}
    return {"present": present, "state": state}


def _read_fees(site: Site) -> dict[str, Any] | None:
    try:
        rows = None if site.fee_report is None else site.fee_report()
    except Exception as exc:  # the app's hook (Stripe's API behind it) must not break the page
        log.warning("the fee report failed", exc_info=True)
        return {"error": f"{type(exc).__name__}: {exc}"}
    if rows is None:
        return None
    rows = list(rows)
    limits = [float(row["max_share"]) for row in rows if row.get("max_share") is not None]
    return chart.bars(shop_tables.fee_shares(rows), max(limits) if limits else None)


async def actions(site: Site, request: Request) -> Response:
    if (session := await site.session(request)) is None:
        return site.to_login(request)
    found = await run_in_threadpool(audit.recent, site.db, 200)
    return site.page(request, session, "actions.html", actions=found)


def _next_query(chosen: reading.EventFilter, page: reading.Page,
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
