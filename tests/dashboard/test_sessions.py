"""Operator sessions end on the server, in every process on the store: over real HTTP, against
``ichido serve`` processes, a cookie copied before a logout or a token rotation opens nothing,
and a retry posted with it changes nothing. A lockout slows wrong guesses from an address and
never shuts the right token out."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest

from ichido import Event
from ichido.config import Settings
from ichido.event import Delivery
from tests.dashboard.conftest import TOKEN
from tests.support import ServerProcess, in_process_app, stop_all

NEW_TOKEN = "dashboard-rotated-token-9876543210"
SIGNING = "a-fixed-dashboard-signing-secret"  # so only the token changes in a rotation


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """One store of each engine (sessions never touch Redis, so no third run with it)."""
    if request.param == "sqlite":
        return Settings(database_url=f"sqlite:///{tmp_path / 'ichido.db'}")
    return Settings(database_url=request.getfixturevalue("postgres_url"))


@pytest.fixture
def servers(settings: Settings) -> Iterator[list[ServerProcess]]:
    """Two ``ichido serve`` processes on one store, the dashboard on, no workers."""
    env = {"ICHIDO_DASHBOARD_TOKEN": f"alice:{TOKEN}", "ICHIDO_DASHBOARD_SECRET": SIGNING}
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            started.append(ServerProcess(settings.database_url, workers=0, env=env))
        yield started
    finally:
        stop_all(*started)


def log_in(url: str, token: str = TOKEN) -> tuple[httpx.Client, str]:
    """A browser logged in at ``url``, and its CSRF token as the page gives it."""
    client = httpx.Client(base_url=url)
    answer = client.post("/dashboard/login", data={"token": token})
    assert answer.status_code == 303, answer.text
    page = client.get("/dashboard/").text
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return client, page[start:page.index('"', start)]


def opens(url: str, cookie: str, path: str = "/dashboard/") -> bool:
    """Whether a copy of the session cookie, sent from another browser, opens ``path``."""
    with httpx.Client(base_url=url, cookies={"ichido_dashboard": cookie}) as other:
        answer = other.get(path)
    assert answer.status_code in (200, 303), answer.status_code
    return answer.status_code == 200


def test_a_cookie_taken_before_logout_opens_nothing_in_any_process(
        servers: list[ServerProcess]) -> None:
    first, second = servers
    browser, csrf = log_in(first.url)
    copied = browser.cookies["ichido_dashboard"]
    assert opens(first.url, copied) and opens(second.url, copied)  # one session, both processes
    assert browser.post("/dashboard/logout", data={"csrf": csrf}).status_code == 303
    assert not opens(first.url, copied)
    assert not opens(second.url, copied)
    assert not opens(second.url, copied, "/dashboard/events")
    browser.close()


def test_a_retry_posted_with_a_cookie_from_before_logout_is_refused_and_retries_nothing(
        settings: Settings, servers: list[ServerProcess]) -> None:
    app = in_process_app(settings, max_attempts=1)

    @app.on("charge.refunded")
    def refused(event: Event, tx) -> None:
        raise RuntimeError("the bank refused the refund (test)")

    body = (b'{"id": "evt_dead_0001", "object": "event", "type": "charge.refunded",'
            b' "created": 1, "data": {"object": {"id": "ch_1"}}}')
    app.inbox.accept([Delivery("evt_dead_0001", "charge.refunded", 1, "ch_1", body)])
    app.worker().drain()
    before = app.inbox.get("evt_dead_0001")
    assert before.status == "dead"
    browser, csrf = log_in(servers[0].url)
    copied = browser.cookies["ichido_dashboard"]
    assert browser.post("/dashboard/logout", data={"csrf": csrf}).status_code == 303
    for server in servers:
        with httpx.Client(base_url=server.url, cookies={"ichido_dashboard": copied}) as thief:
            one = thief.post("/dashboard/events/evt_dead_0001/retry", data={"csrf": csrf})
            every = thief.post("/dashboard/dead/retry", data={"csrf": csrf})
        assert (one.status_code, every.status_code) == (401, 401)
    after = app.inbox.get("evt_dead_0001")
    assert (after.status, after.attempts) == ("dead", before.attempts)
    browser.close()
    app.close()


def test_a_cookie_taken_before_a_token_rotation_is_refused_by_every_process(
        settings: Settings, servers: list[ServerProcess]) -> None:
    """The first process is restarted with the new token; the second still runs with the old
    one (a rolling restart). Once the new token is in use, the old session opens nothing, in
    either process."""
    old_process, still_old = servers
    browser, _csrf = log_in(old_process.url)
    copied = browser.cookies["ichido_dashboard"]
    old_process.stop()
    rotated = ServerProcess(settings.database_url, workers=0, migrate=False, env={
        "ICHIDO_DASHBOARD_TOKEN": f"alice:{NEW_TOKEN}", "ICHIDO_DASHBOARD_SECRET": SIGNING})
    try:
        assert not opens(rotated.url, copied)
        newer, _ = log_in(rotated.url, NEW_TOKEN)
        assert not opens(still_old.url, copied)
        assert opens(rotated.url, newer.cookies["ichido_dashboard"])
        newer.close()
    finally:
        stop_all(rotated)
    browser.close()


def test_the_right_token_opens_a_session_from_an_address_under_lockout(
        servers: list[ServerProcess]) -> None:
    """Someone behind the same address (an office, a VPN) guesses; the operator still gets in."""
    url = servers[0].url
    with httpx.Client(base_url=url) as guesser:
        codes = [guesser.post("/dashboard/login", data={"token": "wrong-guess-0123456789"}
                              ).status_code for _ in range(11)]
        assert codes[:10] == [401] * 10 and codes[10] == 429  # under lockout now
    with httpx.Client(base_url=url, timeout=30) as operator:
        answer = operator.post("/dashboard/login", data={"token": TOKEN})
        assert answer.status_code == 303, answer.text
        assert operator.get("/dashboard/").status_code == 200
    with httpx.Client(base_url=url) as guesser:  # and the guesses are still refused
        assert guesser.post("/dashboard/login",
                            data={"token": "wrong-guess-0123456789"}).status_code == 429
