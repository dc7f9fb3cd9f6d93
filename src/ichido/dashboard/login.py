"""Logging in and out, and choosing the page's language: the dashboard's endpoints that need
no session yet (the mechanism, tokens and signed cookies, is ``auth.py``)."""

from __future__ import annotations

import asyncio
import secrets
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ichido.dashboard import audit
from ichido.dashboard.auth import LOCKOUT_DELAY, same_origin
from ichido.dashboard.i18n import LANGUAGES
from ichido.dashboard.render import read_form
from ichido.dashboard.site import LANG_COOKIE, Site, client


async def login_form(site: Site, request: Request) -> Response:
    # The first page a process serves ends the sessions of tokens it no longer has.
    await run_in_threadpool(site.sessions.forget_rotated_tokens)
    return site.render(request, "login.html", {"error": None})


async def login(site: Site, request: Request) -> Response:
    """A right token opens a session, even from an address under lockout (after the same
    short wait as everyone there: see ``auth.py`` for why)."""
    address = client(request)
    form = await read_form(request)
    if form is None or not same_origin(request):
        return site.render(request, "login.html", {"error": "bad_request"}, 400)
    locked = site.sessions.locked_out(address)
    if locked:
        await asyncio.sleep(LOCKOUT_DELAY)
    operator = site.sessions.operator_for(form.get("token", ""))
    if operator is None:
        site.sessions.failed(address)
        audit.log.warning("dashboard login refused for %s", address)
        if locked:
            return site.render(request, "login.html", {"error": "slow_down"}, 429)
        return site.render(request, "login.html", {"error": "bad_token"}, 401)
    response = site.redirect(request, "/")
    session = await run_in_threadpool(site.sessions.start, response, operator, request)
    await run_in_threadpool(audit.record, site.db, audit.Action(
        id=secrets.token_hex(8), at=time.time(), who=session.who, session=session.sid,
        client=address, action="login", target=None, count=0))
    return response


async def logout(site: Site, request: Request) -> Response:
    session, _form, refused = await site.action(request)
    if refused is not None:
        return refused
    response = site.redirect(request, "/login")
    await run_in_threadpool(site.sessions.end, response, request, session)
    return response


async def language(site: Site, request: Request) -> Response:
    lang = request.path_params["lang"]
    response = site.redirect(request, "/")
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True,
                            samesite="strict", path=request.scope.get("root_path") or "/")
    return response
