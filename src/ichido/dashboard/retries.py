"""Retrying dead letters from the page: the dashboard's only writes to the inbox.

One event, or every dead letter a filter matches. Each action is a POST checked for its session,
origin and CSRF token, and is recorded in the audit log with who did it, from where, and the
ids it covered.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ichido.dashboard import audit, reading
from ichido.dashboard.auth import Session
from ichido.dashboard.site import Site, client

log = logging.getLogger("ichido.dashboard")


async def retry_one(site: Site, request: Request) -> Response:
    session, _form, refused = await site.action(request)
    if refused is not None:
        return refused
    event_id = request.path_params["event_id"]
    await run_in_threadpool(_requeue, site, session, request, "retry", event_id, [[event_id]])
    return site.redirect(request, f"/events/{quote(event_id, safe='')}?retried=1")


async def retry_filter(site: Site, request: Request) -> Response:
    """Every dead letter the filter matches: a replay job (``ichido replay``'s, paged and
    resumable) that runs on in the background; free text on the id, which replays cannot
    select by, requeues the ids the listing finds, a page at a time."""
    session, form, refused = await site.action(request)
    if refused is not None:
        return refused
    chosen = reading.with_status(reading.ListFilter.from_query(form), "dead")
    if not chosen.q:
        job_id = await run_in_threadpool(_replay, site, session, request, chosen)
        return site.redirect(request, f"/replays/{job_id}")
    pages = await run_in_threadpool(reading.matching_ids, site.inbox, chosen, zone=site.zone)
    action_id = await run_in_threadpool(_requeue, site, session, request, "retry_filter",
                                        urlencode(chosen.query()), pages)
    return site.redirect(request, f"/retries/{action_id}")


def _replay(site: Site, session: Session, request: Request, chosen: reading.ListFilter) -> str:
    from ichido.recovery.replay import Replay

    job = Replay.start(site.inbox, chosen.where(time.time(), site.zone),
                       actor=f"{session.who} (dashboard, {client(request)})")
    audit.record(site.db, audit.Action(
        id=secrets.token_hex(8), at=time.time(), who=session.who, session=session.sid,
        client=client(request), action="replay", target=job.record.id,
        count=job.total()))
    threading.Thread(target=_run_replay, args=(job,), daemon=True,
                     name=f"ichido-dashboard-{job.record.id}").start()
    site.forget_cached()
    return job.record.id


def _run_replay(job: Any) -> None:
    """A replay started from the page, to its end; it is resumable (``ichido replay --resume``)
    should this process stop first."""
    try:
        job.run()
    except Exception:  # a thread of its own: nobody else would see the failure
        log.exception("replay %s failed; resume it with ichido replay", job.record.id)


def _requeue(site: Site, session: Session, request: Request, name: str, target: str,
             pages: list[list[str]]) -> str:
    """Requeue page by page, then record who did it with the ids it covered."""
    requeued: list[str] = []
    count = 0
    for ids in pages:
        done = site.inbox.requeue(ids, statuses=("dead",))
        if done:
            count += done
            requeued += ids
    action = audit.Action(id=secrets.token_hex(8), at=time.time(), who=session.who,
                          session=session.sid, client=client(request), action=name,
                          target=target, count=count)
    audit.record(site.db, action, requeued)
    site.forget_cached()
    return action.id
