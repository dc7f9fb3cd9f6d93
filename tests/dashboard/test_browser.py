"""The dashboard in a real browser: Debian's chromium driven by Playwright, over loopback.

Without chromium these skip with the reason, except under CI=true, where they must run. The
screenshots of the main views go to ``test-output/dashboard/`` (ICHIDO_TEST_OUTPUT overrides
it; never committed).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

import ichido
from ichido.config import Settings
from ichido.serving import ThreadedServer
from tests.conftest import IN_CI
from tests.dashboard.conftest import TOKEN, XSS, Flaky
from tests.support import ROOT, SECRET, make_event, signed_headers

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT = Path(os.environ.get("ICHIDO_TEST_OUTPUT", ROOT / "test-output")) / "dashboard"

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

# One worker runs them all: one chromium for the module, not one per worker (pytest -n).
pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The browser tests run on SQLite only: the reads behind each page are tested on every
    backend over HTTP (test_http.py); here it is the browser's side that is under test."""
    return Settings(database_url=f"sqlite:///{tmp_path / 'ichido.db'}", webhook_secrets=(SECRET,),
                    retry_base_seconds=0.01, retry_cap_seconds=0.05, poll_interval_seconds=0.02)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (apt-get install chromium) for the browser tests"
        if IN_CI:
            pytest.fail(reason + ": CI must run them", pytrace=False)
        pytest.skip(reason)
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def served(dashboard_app: ichido.App) -> Iterator[str]:
    """The app with one worker thread, on loopback, with events in every state."""
    dashboard_app.workers = 1
    with ThreadedServer(dashboard_app) as server:
        yield server.url


@pytest.fixture
def page(browser, served: str) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    context.close()


def shot(tab, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def post(url: str, body: bytes) -> None:
    assert httpx.post(f"{url}/webhooks/stripe", content=body,
                      headers=signed_headers(body)).status_code == 200


def wait_for(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def seed(url: str, app: ichido.App) -> None:
    post(url, make_event("payment_intent.succeeded", id="evt_browser_paid",
                         object_id="pi_browser_1"))
    for n in range(3):
        post(url, make_event("charge.refunded", id=f"evt_browser_refund_{n}",
                             obj={"id": f"ch_b{n}", "object": "charge",
                                  "payment_intent": "pi_browser_1"}))
    post(url, make_event("customer.created", id="evt_browser_ignored"))
    post(url, make_event("payment_intent.succeeded", id="evt_browser_hostile", obj={
        "id": "pi_hostile", "object": "payment_intent",
        "metadata": {"note": XSS, "link": "javascript:alert(1)"}}))
    wait_for(lambda: app.inbox.stats()["dead"] == 3 and app.inbox.stats()["processed"] == 3)


def log_in(tab, url: str) -> None:
    tab.goto(f"{url}/dashboard/")
    expect(tab).to_have_url(f"{url}/dashboard/login")
    shot(tab, "01-login")
    tab.fill("input[name=token]", TOKEN)
    tab.click("button[type=submit]")
    expect(tab.locator('[data-counter="dead"] .value')).to_have_text("3")


def test_operator_logs_in_filters_opens_an_event_and_retries_a_dead_letter(
        page, served: str, dashboard_app: ichido.App, flaky: Flaky) -> None:
    seed(served, dashboard_app)
    log_in(page, served)
    assert page.context.cookies()[0]["httpOnly"] is True
    assert TOKEN not in page.url
    shot(page, "02-overview")

    page.click("nav >> text=Events")
    page.fill("input[name=type]", "charge.refunded")
    page.select_option("select[name=status]", "dead")
    page.click("form#filters button[type=submit]")
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(3)
    shot(page, "03-events-filtered")

    page.click("a.event-link >> text=evt_browser_refund_0")
    expect(page.locator("h1.event-id")).to_have_text("evt_browser_refund_0")
    expect(page.locator("#attempts pre.traceback").first).to_contain_text("the bank refused")
    expect(page.locator("#handlers")).to_contain_text("refunded")
    shot(page, "04-event-dead")

    flaky.failing = False  # the bank is back: the retry will go through
    page.click("#retry-one button")
    expect(page.locator("#event-status")).to_have_text("processed", timeout=30_000)
    shot(page, "05-event-retried-processed")


def test_retry_of_every_dead_letter_matching_a_filter_shows_progress(
        page, served: str, dashboard_app: ichido.App, flaky: Flaky) -> None:
    seed(served, dashboard_app)
    log_in(page, served)
    page.click("nav >> text=Dead letters")
    expect(page.locator("table.events tbody tr")).to_have_count(3)
    shot(page, "06-dead-letters")
    flaky.failing = False
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("form.retry-all button")
    expect(page.locator("#done")).to_have_text("3", timeout=30_000)
    shot(page, "07-retry-progress")
    page.click("nav >> text=Actions")
    expect(page.locator("table.actions")).to_contain_text("replay rpl_")


def test_hostile_metadata_stays_text_in_the_browser(page, served: str,
                                                    dashboard_app: ichido.App) -> None:
    seed(served, dashboard_app)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, served)
    page.goto(f"{served}/dashboard/events/evt_browser_hostile")
    expect(page.locator("#payload")).to_contain_text("<script>document.title='owned'</script>")
    expect(page.locator("#payload")).to_contain_text("javascript:alert(1)")
    assert page.title() != "owned" and not dialogs
    assert page.locator("#payload script").count() == 0
    assert page.locator("a[href^='javascript:']").count() == 0
    shot(page, "08-event-hostile-metadata")


def test_a_form_from_another_origin_changes_nothing(browser, page, served: str,
                                                     dashboard_app: ichido.App) -> None:
    """A page elsewhere that posts to the retry URL with the operator's browser: refused."""
    seed(served, dashboard_app)
    log_in(page, served)
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    target = f"{served}/dashboard/events/evt_browser_refund_1/retry"

    async def evil(_request):
        return HTMLResponse(f'<form id="f" method="post" action="{target}">'
                            '<input name="csrf" value="guess"></form>'
                            "<script>document.getElementById('f').submit()</script>")

    with ThreadedServer(Starlette(routes=[Route("/", evil)])) as attacker:
        with page.expect_navigation(url=target):
            page.goto(attacker.url)
        assert "http://" in page.url
    expect(page.locator("body")).not_to_contain_text("Requeued")
    assert dashboard_app.inbox.get("evt_browser_refund_1").status == "dead"


def test_shop_state_japanese_and_phone_width(browser, served: str,
                                             dashboard_app: ichido.App) -> None:
    seed(served, dashboard_app)
    add_shop(dashboard_app)
    from ichido.shop import dashboard  # the shop's tab, through the public hook

    dashboard.register(dashboard_app, lambda: [
        {"method": "card", "gross": 120_000, "fees": 4_320, "max_share": 0.2},
        {"method": "konbini", "gross": 1_800, "fees": 1_090, "max_share": 0.2}])
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP",
                                device_scale_factor=2, is_mobile=True)
    tab = phone.new_page()
    tab.set_default_timeout(20_000)
    try:
        log_in(tab, served)
        expect(tab.locator("nav")).to_contain_text("概要")
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the overview is {width}px wide on a 390px phone"
        shot(tab, "09-phone-overview-ja")
        tab.get_by_role("link", name="ショップ").click()
        expect(tab.locator("#shop-expiring")).to_contain_text("ord_today")
        expect(tab.locator("#shop-expiring")).to_contain_text("JST")  # the shop's zone
        expect(tab.locator("#shop-refunds")).to_contain_text("re_waiting")
        expect(tab.locator("#fee-share")).to_contain_text("60.6%")
        shot(tab, "10-phone-shop-ja")
    finally:
        phone.close()


def add_shop(app: ichido.App) -> None:
    """The shop's real tables (its schema), with one voucher due today and one refund waiting."""
    from ichido.schema import open_inbox
    from ichido.shop.schema import SHOP_SCHEMA
    from tests.shop.support import add_vouchers_and_a_waiting_refund

    open_inbox(app.settings, migrate=True, steps=SHOP_SCHEMA).close()
    add_vouchers_and_a_waiting_refund(app.database)
