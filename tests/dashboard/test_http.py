"""The dashboard over HTTP (Starlette's TestClient on the real app): login, sessions, CSRF,
escaping, and the reads behind each page on every backend."""

from __future__ import annotations

import re
import time

import pytest
from starlette.testclient import TestClient

import ichido
from ichido.config import Settings
from tests.dashboard.conftest import TOKEN, XSS, Flaky, login, store_events


@pytest.fixture
def client(dashboard_app: ichido.App) -> TestClient:
    with TestClient(dashboard_app, base_url="http://testserver") as client:
        yield client


def test_dashboard_is_off_without_a_token(settings: Settings,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ICHIDO_DASHBOARD_TOKEN", raising=False)
    with TestClient(ichido.App(settings, workers=0)) as client:
        assert client.get("/dashboard/login").status_code == 404


def test_pages_need_a_session(client: TestClient) -> None:
    for path in ("/dashboard/", "/dashboard/events", "/dashboard/dead", "/dashboard/panels/x"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/login"


def test_a_wrong_token_is_refused_and_the_right_one_opens_a_strict_httponly_session(
        client: TestClient) -> None:
    wrong = client.post("/dashboard/login", data={"token": TOKEN + "x"}, follow_redirects=False)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    right = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    cookie = right.headers["set-cookie"]
    assert right.status_code == 303
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert TOKEN not in cookie and TOKEN not in right.headers["location"]
    assert client.get("/dashboard/").status_code == 200


def test_a_tampered_session_cookie_is_no_session(client: TestClient) -> None:
    login(client)
    value = client.cookies["ichido_dashboard"]
    client.cookies.set("ichido_dashboard", value[:-2] + ("A" if value[-1] != "A" else "B"),
                       path="/dashboard")
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303


def test_repeated_wrong_tokens_are_slowed_down(client: TestClient) -> None:
    codes = [client.post("/dashboard/login", data={"token": "nope" * 5}).status_code
             for _ in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429


def test_every_action_needs_the_sessions_csrf_token(
        client: TestClient, dashboard_app: ichido.App) -> None:
    stored = store_events(dashboard_app, client)
    csrf = login(client)
    target = f"/dashboard/events/{stored.dead[0]}/retry"
    assert client.post(target, data={}).status_code == 403
    assert client.post(target, data={"csrf": "forged"}).status_code == 403
    assert client.post(target, data={"csrf": csrf},
                       headers={"Origin": "http://evil.example"}).status_code == 403
    assert dashboard_app.inbox.get(stored.dead[0]).status == "dead"  # nothing happened
    done = client.post(target, data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert dashboard_app.inbox.get(stored.dead[0]).status == "retrying"


def test_hostile_metadata_renders_as_text_and_secrets_are_masked(
        client: TestClient, dashboard_app: ichido.App) -> None:
    stored = store_events(dashboard_app, client)
    login(client)
    page = client.get(f"/dashboard/events/{stored.hostile}").text
    assert XSS not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page and "javascript:alert(1)" in page  # text, not a link
    assert "whsec_should_never_show" not in page and "whsec_***" in page
    assert "'unsafe-inline'" not in client.get("/dashboard/").headers["content-security-policy"]


def test_the_overview_counts_what_the_store_counts(client: TestClient,
                                                  dashboard_app: ichido.App) -> None:
    store_events(dashboard_app, client)
    login(client)
    page = client.get("/dashboard/").text
    stats = dashboard_app.inbox.stats()
    for name in ("received", "unique", "processed", "dead"):
        shown = re.search(rf'data-counter="{name}">\s*<div class="value">([\d,]+)<', page)
        assert shown and int(shown.group(1).replace(",", "")) == stats[name], name
    assert stats["dead"] == 2


def test_events_filter_and_page_on_the_server(client: TestClient,
                                              dashboard_app: ichido.App) -> None:
    stored = store_events(dashboard_app, client)
    login(client)
    dead = client.get("/dashboard/events", params={"status": "dead"}).text
    assert all(event_id in dead for event_id in stored.dead) and stored.paid not in dead
    by_id = client.get("/dashboard/events", params={"q": "hostile"}).text
    assert stored.hostile in by_id and stored.paid not in by_id
    by_object = client.get("/dashboard/events", params={"object_id": stored.object_id}).text
    assert stored.paid in by_object and stored.hostile not in by_object
    later = client.get("/dashboard/events", params={"since": "2099-01-01"}).text
    assert stored.paid not in later
    seen: list[str] = []
    query = "limit=1"
    while query:  # one a page, each page after the last row shown: all four, once each
        page = client.get(f"/dashboard/events?{query}").text
        seen += re.findall(r'data-event-id="([^"]+)"', page)
        found = re.search(r'rel="next" href="/dashboard/events\?([^"]+)"', page)
        query = found.group(1).replace("&amp;", "&") if found else ""
    assert sorted(seen) == sorted([stored.paid, *stored.dead, stored.hostile])


def test_the_event_page_shows_attempts_tracebacks_and_handlers(
        client: TestClient, dashboard_app: ichido.App) -> None:
    stored = store_events(dashboard_app, client)
    login(client)
    page = client.get(f"/dashboard/events/{stored.dead[0]}").text
    assert "the bank refused the refund (test)" in page and "Traceback" in page
    assert "refunded</code>" in page  # the handler's qualified name
    assert client.get("/dashboard/events/evt_missing").status_code == 404


def test_retry_by_filter_is_a_replay_job_with_progress(
        client: TestClient, dashboard_app: ichido.App, flaky: Flaky) -> None:
    from ichido.recovery.replay import load

    stored = store_events(dashboard_app, client)
    csrf = login(client)
    answer = client.post("/dashboard/dead/retry", data={"csrf": csrf, "type": "charge.refunded"},
                         follow_redirects=False)
    assert answer.status_code == 303
    progress = answer.headers["location"]
    job_id = progress.rsplit("/", 1)[1]
    assert progress.startswith("/dashboard/replays/rpl_")
    assert wait_for(lambda: load(dashboard_app.inbox, job_id).state == "done")
    job = load(dashboard_app.inbox, job_id)
    assert (job.matched, job.requeued, job.actor) == (2, 2, "alice (dashboard, testclient)")
    assert job.filter["types"] == ["charge.refunded"] and job.filter["statuses"] == ["dead"]
    flaky.failing = False
    dashboard_app.worker().drain()
    assert all(dashboard_app.inbox.get(i).status == "processed" for i in stored.dead)
    assert 'id="done">2<' in client.get(progress).text
    actions = client.get("/dashboard/actions").text
    assert "alice" in actions and job_id in actions and "login" in actions


def test_retry_by_id_text_requeues_what_the_listing_finds(
        client: TestClient, dashboard_app: ichido.App, flaky: Flaky) -> None:
    stored = store_events(dashboard_app, client)
    csrf = login(client)
    answer = client.post("/dashboard/dead/retry", data={"csrf": csrf, "q": "refund_0001"},
                         follow_redirects=False)
    assert answer.headers["location"].startswith("/dashboard/retries/")
    statuses = {i: dashboard_app.inbox.get(i).status for i in stored.dead}
    assert statuses == {"evt_refund_0000": "dead", "evt_refund_0001": "retrying"}
    flaky.failing = False
    dashboard_app.worker().drain()
    assert 'id="done">1<' in client.get(answer.headers["location"]).text


def wait_for(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = login(client)
    assert client.post("/dashboard/logout", data={"csrf": csrf},
                       follow_redirects=False).status_code == 303
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303


def test_japanese_is_one_click_away(client: TestClient) -> None:
    login(client)
    client.get("/dashboard/lang/ja")
    assert "概要" in client.get("/dashboard/").text


def test_a_bad_filter_is_a_400_that_quotes_it_as_text(client: TestClient) -> None:
    login(client)
    answer = client.get("/dashboard/events", params={"since": "<b>yesterday</b>"})
    assert answer.status_code == 400
    assert "&lt;b&gt;yesterday&lt;/b&gt;" in answer.text and "<b>" not in answer.text


@pytest.mark.parametrize("since", ["9" * 30 + "d", "9" * 400 + "d", "0001-01-01",
                                   "9999-12-31T23:59:59-23:59"])
def test_a_filter_time_out_of_range_is_a_400_not_a_crash(client: TestClient, since: str) -> None:
    """An age reaching before 1970, or one no float holds, would overflow the stores'
    64-bit columns."""
    csrf = login(client)
    for answer in (client.get("/dashboard/events", params={"since": since}),
                   client.post("/dashboard/dead/retry", data={"csrf": csrf, "since": since})):
        assert answer.status_code == 400 and "1970 to 9999" in answer.text


def test_a_session_ends_when_its_operators_token_is_removed(dashboard_app: ichido.App) -> None:
    from starlette.requests import Request
    from starlette.responses import Response

    from ichido.dashboard.auth import COOKIE, Sessions
    from ichido.dashboard.settings import DashboardSettings, parse_tokens

    both = parse_tokens(f"alice:{TOKEN},bob:{TOKEN}-bob")
    shared = "a-fixed-signing-secret"
    dashboard_app.start()
    before = Sessions(DashboardSettings(operators=both, secret=shared),
                      lambda: dashboard_app.database)
    response = Response()
    request = Request({"type": "http", "scheme": "http", "root_path": "/dashboard",
                       "headers": [(b"host", b"testserver")], "path": "/dashboard/login",
                       "server": ("testserver", 80), "query_string": b""})
    bob = before.operator_for(f"{TOKEN}-bob")
    assert bob is not None and bob.name == "bob"
    before.start(response, bob, request)
    value = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert before.read({COOKIE: value}).who == "bob"
    after = Sessions(DashboardSettings(operators=both[:1], secret=shared),
                     lambda: dashboard_app.database)
    assert after.read({COOKIE: value}) is None
    assert before.read({COOKIE: value}) is None  # gone from the store, for every process


def test_duplicates_are_charted_from_the_growth_between_counter_samples() -> None:
    from ichido.dashboard.chart import CounterSamples

    samples = CounterSamples(every=10)
    for at, cached, durable in ((0, 0, 0), (5, 9, 9), (60, 4, 1), (130, 10, 2), (200, 0, 0)):
        samples.add({"duplicates_cache": cached, "duplicates_durable": durable}, now=at)
    # the sample at 5 s came too soon and was skipped; the drop at 200 s (a counter reset,
    # e.g. a restarted store) counts as nothing rather than as a negative
    assert samples.per_bucket(start=0, width=60, count=4) == [0, 5, 7, 0]


def test_the_overview_shows_the_reconcilers_cursor_and_last_run(
        client: TestClient, dashboard_app: ichido.App) -> None:
    with dashboard_app.database.transaction() as tx:  # what a reconcile run leaves behind
        tx.execute("INSERT INTO ichido_reconcile_cursors (account, created, updated_at)"
                   " VALUES ('acct_main', 1764547200, 1764550800)")
    login(client)
    shown = client.get("/dashboard/").text
    assert "acct_main" in shown and "2025-12-01 00:00:00 UTC" in shown
    assert "2025-12-01 01:00:00 UTC" in shown
