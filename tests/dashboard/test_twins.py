"""The dashboard counts twins: a thin event whose snapshot applied its change."""

from __future__ import annotations

import re

import ichido
from starlette.testclient import TestClient

from tests.dashboard.conftest import deliver, login
from tests.support import make_event, signed_headers
from tests.thin.support import make_thin


def test_the_overview_counts_twins_and_the_events_page_lists_them(
        dashboard_app: ichido.App) -> None:
    with TestClient(dashboard_app, base_url="http://testserver") as client:
        deliver(client, make_event("payment_intent.succeeded", id="evt_1Snapshot"))
        dashboard_app.worker().drain()
        thin = make_thin(snapshot_event="evt_1Snapshot")  # its twin applied: nothing to fetch
        answer = client.post("/webhooks/stripe", content=thin, headers=signed_headers(thin))
        assert answer.status_code == 200
        dashboard_app.worker().drain()
        assert dashboard_app.inbox.stats()["duplicates_twin"] == 1
        login(client)
        page = client.get("/dashboard/").text
        shown = re.search(r'data-counter="duplicates_twin">\s*<div class="value">([\d,]+)<', page)
        assert shown and shown.group(1) == "1"
        listed = client.get("/dashboard/events", params={"status": "twin"}).text
        assert '"evt_test_65' in listed or "evt_test_65" in listed
        assert "evt_1Snapshot" in listed  # why: the twin that applied it
