"""Token login, sessions kept in the store, and the CSRF check on every action.

The token is compared in constant time (digests of equal length, every operator's, no early
exit), and lives only in the login form's body. A session is a row of
``ichido_dashboard_sessions`` (who, the digest of the token it was opened with, when it ends);
the cookie holds only its signed, random id and the CSRF token. Every request reads that row, so
what ends a session ends it in every process on the store, at once: logging out deletes the
row, a token taken out of ``ICHIDO_DASHBOARD_TOKEN`` deletes the rows opened with it (when a
process with the new tokens first serves the page, and the digest check refuses them before
that), and a row past ``expires_at`` opens nothing. The cookie is HttpOnly and SameSite=Strict,
so no script reads it and no other site's form sends it.

Failed logins are counted per client address. Past ``FAILURES`` in ``WINDOW`` seconds, every
login from that address waits ``LOCKOUT_DELAY`` before its token is even compared, and a wrong
one is answered 429: a guesser gets one try per connection per delay, while the right token is
still accepted after the same short wait. A lockout that refused the right token would let
anyone behind the same address (an office, a VPN, a NAT) lock the operators out by guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from ichido.dashboard.reading import Store
from ichido.dashboard.settings import DashboardSettings, Operator

COOKIE = "ichido_dashboard"
FAILURES = 10  # wrong tokens from one address...
WINDOW = 60.0  # ...within this many seconds put it under lockout
LOCKOUT_DELAY = 1.0  # seconds every login from an address under lockout waits
MAX_CLIENTS = 10_000  # addresses remembered: a sweep of addresses cannot grow it forever


@dataclass(frozen=True)
class Session:
    sid: str
    who: str
    digest: str
    csrf: str


class Sessions:
    """Open, read and end sessions in the store; count failed logins per client address.
    Every method that takes no ``Response`` reads or writes the store: call it off the event
    loop."""

    def __init__(self, settings: DashboardSettings, db: Callable[[], Store]) -> None:
        self.settings = settings
        self._db = db
        self._signer = URLSafeTimedSerializer(settings.secret, salt="ichido-dashboard")
        self._failures: dict[str, list[float]] = {}
        self._rotated_out = False
        self._born = time.time()  # this process's tokens hold from here on

    def operator_for(self, token: str) -> Operator | None:
        """The operator whose token this is; every token is compared, whatever matches."""
        given = hashlib.sha256(token.encode()).digest()
        found = None
        for operator in self.settings.operators:
            if hmac.compare_digest(given, hashlib.sha256(operator.token.encode()).digest()):
                found = operator
        return found

    def locked_out(self, client: str) -> bool:
        """Whether ``client`` failed ``FAILURES`` times within the last ``WINDOW`` seconds."""
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < WINDOW]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= FAILURES

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= MAX_CLIENTS:
            self._failures.clear()
        self._failures.setdefault(client, []).append(time.monotonic())

    def start(self, response: Response, operator: Operator, request: Request) -> Session:
        """A new session row and its cookie (rows past their end are cleared on the way)."""
        session = Session(sid=secrets.token_urlsafe(24), who=operator.name,
                          digest=operator.digest, csrf=secrets.token_urlsafe(24))
        now = time.time()
        self.forget_rotated_tokens()
        with self._db().transaction() as tx:
            tx.execute("DELETE FROM ichido_dashboard_sessions WHERE expires_at < ?", (now,))
            tx.execute("INSERT INTO ichido_dashboard_sessions (id, who, digest, started_at,"
                       " expires_at) VALUES (?, ?, ?, ?, ?)",
                       (session.sid, session.who, session.digest, now,
                        now + self.settings.session_seconds))
        value = self._signer.dumps([session.sid, session.csrf])
        response.set_cookie(COOKIE, value, max_age=int(self.settings.session_seconds),
                            path=cookie_path(request), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return session

    def end(self, response: Response, request: Request, session: Session) -> None:
        """Log out: the row goes, so the cookie opens nothing anywhere, copied or not."""
        with self._db().transaction() as tx:
            tx.execute("DELETE FROM ichido_dashboard_sessions WHERE id = ?", (session.sid,))
        response.delete_cookie(COOKIE, path=cookie_path(request), httponly=True,
                               samesite="strict", secure=request.url.scheme == "https")

    def read(self, cookies: Mapping[str, str]) -> Session | None:
        """The live session the cookie names, or None: a bad signature, no row (logged out,
        its token removed), a row past its end, or a token this process does not know."""
        value = cookies.get(COOKIE)
        if not value:
            return None
        try:
            sid, csrf = self._signer.loads(value, max_age=self.settings.session_seconds)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(sid, str) or not isinstance(csrf, str):
            return None
        self.forget_rotated_tokens()
        with self._db().reading() as tx:
            row = tx.execute("SELECT who, digest, expires_at FROM ichido_dashboard_sessions"
                             " WHERE id = ?", (sid,)).fetchone()
        if row is None or float(row[2]) <= time.time():
            return None
        who, digest = row[0], row[1]
        if not any(op.digest == digest and op.name == who for op in self.settings.operators):
            return None  # the token it was opened with is gone: so is the session
        return Session(sid=sid, who=who, digest=digest, csrf=csrf)

    def forget_rotated_tokens(self) -> None:
        """Once per process: delete the sessions opened before it started with a token it
        does not have, so that processes still running with the old tokens refuse them too.
        Only those opened before: a process started earlier with the old tokens (a rolling
        restart) must not delete the sessions the new token opens."""
        if self._rotated_out:
            return
        digests = [operator.digest for operator in self.settings.operators] or [""]
        with self._db().transaction() as tx:
            tx.execute("DELETE FROM ichido_dashboard_sessions WHERE started_at < ? AND digest"
                       f" NOT IN ({', '.join('?' for _ in digests)})", [self._born, *digests])
        self._rotated_out = True


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
