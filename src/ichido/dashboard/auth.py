"""Token login, the signed session cookie, and the CSRF check on every action.

The token is compared in constant time (digests of equal length, every operator's, no early
exit), and lives only in the login form's body: the session cookie holds a signed, random
session id, the operator's name and token digest, and the CSRF token. The cookie is HttpOnly and
SameSite=Strict, so no script reads it and no other site's form sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from ichido.dashboard.settings import DashboardSettings, Operator

COOKIE = "ichido_dashboard"


@dataclass(frozen=True)
class Session:
    sid: str
    who: str
    digest: str
    csrf: str


class Sessions:
    """Issue and read sessions; a failed login is slowed down per client, not answered fast."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self._signer = URLSafeTimedSerializer(settings.secret, salt="ichido-dashboard")
        self._failures: dict[str, list[float]] = {}

    def operator_for(self, token: str) -> Operator | None:
        """The operator whose token this is; every token is compared, whatever matches."""
        given = hashlib.sha256(token.encode()).digest()
        found = None
        for operator in self.settings.operators:
            if hmac.compare_digest(given, hashlib.sha256(operator.token.encode()).digest()):
                found = operator
        return found

    def too_many_failures(self, client: str, limit: int = 10, window: float = 60.0) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < window]
        self._failures[client] = recent
        return len(recent) >= limit

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, []).append(time.monotonic())
        if len(self._failures) > 10_000:  # bounded: an address sweep cannot grow it forever
            self._failures.clear()

    def start(self, response: Response, operator: Operator, request: Request) -> Session:
        session = Session(sid=secrets.token_urlsafe(12), who=operator.name,
                          digest=operator.digest, csrf=secrets.token_urlsafe(24))
        value = self._signer.dumps([session.sid, session.who, session.digest, session.csrf])
        response.set_cookie(COOKIE, value, max_age=int(self.settings.session_seconds),
                            path=cookie_path(request), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return session

    def end(self, response: Response, request: Request) -> None:
        response.delete_cookie(COOKIE, path=cookie_path(request), httponly=True,
                               samesite="strict", secure=request.url.scheme == "https")

    def read(self, cookies: Mapping[str, str]) -> Session | None:
        value = cookies.get(COOKIE)
        if not value:
            return None
        try:
            sid, who, digest, csrf = self._signer.loads(value,
                                                        # whole seconds, as its timestamps are
                                                        max_age=int(self.settings.session_seconds))
        except (BadSignature, ValueError, TypeError):
            return None
        if not any(op.digest == digest and op.name == who for op in self.settings.operators):
            return None  # the token it was opened with is gone: so is the session
        return Session(sid=sid, who=who, digest=digest, csrf=csrf)


def csrf_ok(session: Session, form: Mapping[str, str]) -> bool:
    return hmac.compare_digest(session.csrf.encode(), form.get("csrf", "").encode())


def same_origin(request: Request) -> bool:
    """A browser names the page a form came from; another site's is refused before the
    session is even read (SameSite already keeps the cookie from it)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    # Host and port, not the scheme: behind a proxy that ends TLS the app sees http while the
    # browser names https. The CSRF token is the real check; this one stops a foreign page.
    return urlsplit(origin).netloc == request.url.netloc


def cookie_path(request: Request) -> str:
    return (request.scope.get("root_path") or "").rstrip("/") or "/"
