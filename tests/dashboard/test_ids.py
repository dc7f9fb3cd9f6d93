"""Event ids are data, whatever characters they hold: an id with ``/``, ``?``, ``#`` or ``%``
(all printable ASCII, so the receiver stores them) opens in the dashboard through the link the
page gives, as does its retry. Over a real server: uvicorn decodes the path once, as it must.
(Starlette's TestClient decodes it twice, so ``%25`` would not survive it.)"""

from __future__ import annotations

import html
import re
from typing import Iterator

import httpx
import pytest

import ichido
from ichido.serving import ThreadedServer
from tests.dashboard.conftest import Flaky, deliver, login
from tests.support import make_event

ODD_IDS = ["evt_a/b", "evt_q?x=1#frag", "evt_100%25_%zz", "evt_/../up", "evt_end/", "evt_&+;="]


@pytest.fixture
def client(dashboard_app: ichido.App) -> Iterator[httpx.Client]:
    with ThreadedServer(dashboard_app) as server, httpx.Client(base_url=server.url) as client:
        yield client


def links(page: str, css_class: str = "event-link") -> dict[str, str]:
    """Shown id → href, as a browser reads them (entities decoded)."""
    found = re.findall(rf'<a class="{css_class}" href="([^"]+)">([^<]*)</a>', page)
    return {html.unescape(text): html.unescape(href) for href, text in found}


def test_ids_with_url_special_characters_open_from_the_links_the_page_gives(
        client: httpx.Client, dashboard_app: ichido.App) -> None:
    for event_id in ODD_IDS:
        deliver(client, make_event(id=event_id))
    dashboard_app.worker().drain()
    login(client)
    shown = links(client.get("/dashboard/events", params={"limit": 100}).text)
    assert set(ODD_IDS) <= set(shown), shown
    for event_id in ODD_IDS:
        page = client.get(shown[event_id])
        assert page.status_code == 200, (event_id, shown[event_id], page.status_code)
        assert f"<h1>{html.escape(event_id)}" in page.text or html.escape(event_id) in page.text


def test_a_dead_letter_whose_id_holds_a_slash_is_retried_from_its_page(
        client: httpx.Client, dashboard_app: ichido.App, flaky: Flaky) -> None:
    event_id = "evt_dead/one?#%"
    deliver(client, make_event("charge.refunded", id=event_id,
                               obj={"id": "ch_odd", "object": "charge"}))
    dashboard_app.worker().drain()
    assert dashboard_app.inbox.get(event_id).status == "dead"
    csrf = login(client)
    href = links(client.get("/dashboard/dead").text)[event_id]
    page = client.get(href)
    assert page.status_code == 200
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)" id="retry-one"',
                                     page.text).group(1))
    done = client.post(action, data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert dashboard_app.inbox.get(event_id).status == "retrying"
    assert client.get(done.headers["location"]).status_code == 200
