"""An application's own tabs and event facts on the operator page (``app.dashboard``), and the
page's time zone (``ICHIDO_DASHBOARD_TIMEZONE``, else the application's, else UTC).

The dashboard knows no application: these register their panels on a plain ``ichido.App``
after it was built, as an application does, and read its stored events back."""

from __future__ import annotations

import datetime as dt

import pytest
from starlette.testclient import TestClient

import ichido
from ichido.config import Settings
from ichido.dashboard import panels
from ichido.dashboard.settings import DashboardSettings
from ichido.errors import ConfigError
from tests.dashboard.conftest import TOKEN, XSS, deliver, login, store_events
from tests.support import make_event

# 2025-12-01 00:00:00 UTC is 09:00 in Tokyo
MIDNIGHT_UTC = int(dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture
def client(dashboard_app: ichido.App) -> TestClient:
    with TestClient(dashboard_app, base_url="http://testserver") as client:
        yield client


def received_panel(app: ichido.App) -> None:
    """A tab listing the stored events, read from the app's own database."""
    app.dashboard.tab("received", {"en": "Received", "ja": "受信一覧"})

    @app.dashboard.panel("received")
    def received(view: panels.View) -> list[panels.Section]:
        with view.db.reading() as tx:
            rows = tx.execute("SELECT id, object_id, received_at FROM ichido_events"
                              " ORDER BY id").fetchall()
        return [panels.Table("Stored", [panels.Column("id", "Event"),
                                        panels.Column("object_id", "Object", "object"),
                                        panels.Column("at", "At", "time"),
                                        panels.Column("note", "Note")],
                             [{"id": i, "object_id": o, "at": MIDNIGHT_UTC, "note": XSS}
                              for i, o, _received in rows], id="stored"),
                panels.Bars("Share", [("card", 0.05, "5 of 100"), ("konbini", 0.6, "60 of 100")],
                            limit=0.2, id="share")]


def test_an_applications_tab_shows_its_own_reads_as_text(client: TestClient,
                                                          dashboard_app: ichido.App) -> None:
    received_panel(dashboard_app)  # after the app (and its dashboard) were built
    stored = store_events(dashboard_app, client)
    login(client)
    overview = client.get("/dashboard/").text
    assert 'href="/dashboard/panels/received"' in overview and ">Received<" in overview
    page = client.get("/dashboard/panels/received")
    assert page.status_code == 200
    assert stored.paid in page.text and "2025-12-01 00:00:00 UTC" in page.text
    assert f'href="/dashboard/events?object_id={stored.object_id}"' in page.text
    assert XSS not in page.text and "&lt;script&gt;" in page.text
    assert "60.0%" in page.text and 'class="limit"' in page.text  # the bar past the limit
    client.get("/dashboard/lang/ja")
    assert ">受信一覧<" in client.get("/dashboard/").text
    assert client.get("/dashboard/panels/nothing").status_code == 404


def test_without_panels_the_page_has_no_application_tab(client: TestClient) -> None:
    login(client)
    overview = client.get("/dashboard/").text
    assert "/dashboard/panels/" not in overview and "Shop" not in overview
    assert client.get("/dashboard/shop").status_code == 404


def test_a_failing_panel_shows_its_error_redacted_and_the_rest_of_the_tab(
        client: TestClient, dashboard_app: ichido.App) -> None:
    received_panel(dashboard_app)

    @dashboard_app.dashboard.panel("received", every=300)
    def unreachable(view: panels.View) -> list[panels.Section]:
        raise ConnectionError("api.stripe.test unreachable with sk_test_abcdef123")

    store_events(dashboard_app, client)
    login(client)
    page = client.get("/dashboard/panels/received")
    assert page.status_code == 200
    assert "unreachable" in page.text and "sk_test_abcdef123" not in page.text
    assert 'id="stored"' in page.text


def test_an_event_panel_adds_the_applications_facts_to_the_event_page(
        client: TestClient, dashboard_app: ichido.App) -> None:
    seen: list[str] = []

    @dashboard_app.dashboard.event_panel
    def about(view: panels.View, event: dict) -> list[panels.Section]:
        seen.append(event["id"])
        obj = event["data"]["object"]
        if obj.get("object") != "charge":
            return []
        return [panels.Facts("Refund", [panels.Field("charge", obj["id"]),
                                        panels.Field("payment", obj["payment_intent"], "object"),
                                        panels.Field("due", MIDNIGHT_UTC, "time")],
                             id="refund-facts")]

    stored = store_events(dashboard_app, client)
    login(client)
    page = client.get(f"/dashboard/events/{stored.dead[0]}").text
    assert 'id="refund-facts"' in page and "ch_0" in page
    assert f'href="/dashboard/events?object_id={stored.object_id}"' in page
    assert 'id="refund-facts"' not in client.get(f"/dashboard/events/{stored.paid}").text
    assert seen == [stored.dead[0], stored.paid]


def test_the_applications_time_zone_shows_every_time_and_reads_typed_ones(
        client: TestClient, dashboard_app: ichido.App) -> None:
    with dashboard_app.database.transaction() as tx:  # what a reconcile run leaves behind
        tx.execute("INSERT INTO ichido_reconcile_cursors (account, created, updated_at)"
                   " VALUES ('acct_main', ?, ?)", (MIDNIGHT_UTC, MIDNIGHT_UTC))
    deliver(client, make_event(id="evt_at_nine_in_tokyo", created=MIDNIGHT_UTC))
    login(client)
    since = {"since": "2025-12-01T05:00"}  # typed without a zone: the page's
    assert "evt_at_nine_in_tokyo" not in client.get("/dashboard/events", params=since).text
    assert "2025-12-01 00:00:00 UTC" in client.get("/dashboard/").text

    dashboard_app.dashboard.timezone = "Asia/Tokyo"  # as the shop does
    overview = client.get("/dashboard/").text
    assert "2025-12-01 09:00:00 JST" in overview and "00:00:00 UTC" not in overview
    assert "evt_at_nine_in_tokyo" in client.get("/dashboard/events", params=since).text
    named = {"since": "2025-12-01T05:00+00:00"}  # a time that names its zone keeps it
    assert "evt_at_nine_in_tokyo" not in client.get("/dashboard/events", params=named).text


def test_the_setting_wins_over_the_applications_zone(settings: Settings,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICHIDO_DASHBOARD_TOKEN", f"alice:{TOKEN}")
    monkeypatch.setenv("ICHIDO_DASHBOARD_TIMEZONE", "America/New_York")
    app = ichido.App(settings, workers=0)
    app.dashboard.timezone = "Asia/Tokyo"
    app.migrate()
    try:
        with TestClient(app, base_url="http://testserver") as client:
            with app.database.transaction() as tx:
                tx.execute("INSERT INTO ichido_reconcile_cursors (account, created, updated_at)"
                           " VALUES ('acct_main', ?, ?)", (MIDNIGHT_UTC, MIDNIGHT_UTC))
            login(client)
            assert "2025-11-30 19:00:00 EST" in client.get("/dashboard/").text
    finally:
        app.close()


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "JST+9", "../../etc/passwd", "Asia/"])
def test_a_name_that_is_no_time_zone_is_refused_in_one_line(name: str) -> None:
    with pytest.raises(ConfigError, match="ICHIDO_DASHBOARD_TIMEZONE: .* is not a time zone"):
        DashboardSettings.from_env({"ICHIDO_DASHBOARD_TOKEN": TOKEN,
                                    "ICHIDO_DASHBOARD_TIMEZONE": name})
    with pytest.raises(ConfigError, match="app.dashboard.timezone"):
        panels.Panels().timezone = name


def test_the_default_zone_is_utc_and_a_tab_needs_a_plain_name() -> None:
    assert DashboardSettings.from_env({"ICHIDO_DASHBOARD_TOKEN": TOKEN}).timezone is None
    assert DashboardSettings.from_env({"ICHIDO_DASHBOARD_TOKEN": TOKEN,
                                       "ICHIDO_DASHBOARD_TIMEZONE": "Asia/Tokyo"}).timezone \
        == "Asia/Tokyo"
    hook = panels.Panels()
    with pytest.raises(ConfigError, match="lower-case"):
        hook.tab("../shop", "Shop")
    with pytest.raises(ConfigError, match="declare it first"):
        hook.panel("shop")
    with pytest.raises(ConfigError, match="kind"):
        panels.Column("id", "Id", "html")


def test_the_readmes_panel_example_runs_as_written(client: TestClient,
                                                   dashboard_app: ichido.App) -> None:
    from tests.support import ROOT

    readme = (ROOT / "README.md").read_text("utf-8")
    start = readme.index("```python", readme.index("**An application's own tabs.**"))
    example = readme[start + len("```python"):readme.index("```", start + 3)]
    exec(compile(example, "README.md", "exec"), {"app": dashboard_app})
    login(client)  # starts the app: its database is there to write the example's table to
    with dashboard_app.database.transaction() as tx:
        tx.execute("CREATE TABLE my_orders (id TEXT, amount INTEGER, due BIGINT, paid INTEGER)")
        tx.execute("INSERT INTO my_orders VALUES ('ord_readme', 1800, ?, 0)", (MIDNIGHT_UTC,))
    page = client.get("/dashboard/panels/orders").text
    assert "ord_readme" in page and "1800" in page and "2025-12-01 09:00:00 JST" in page
