"""A served ichido app with the dashboard on, and events in every state to look at."""

from __future__ import annotations

import dataclasses
from typing import Iterator

import pytest
from starlette.testclient import TestClient

import ichido
from ichido.config import Settings
from ichido.dashboard.mount import Dashboard
from tests.support import make_event, signed_headers

TOKEN = "dashboard-test-token-0123456789"
XSS = "<script>document.title='owned'</script>"


@dataclasses.dataclass
class Flaky:
    """The refund handler fails while ``failing`` is set: its events go dead, then recover."""

    failing: bool = True


@dataclasses.dataclass
class Stored:
    paid: str
    dead: list[str]
    hostile: str
    object_id: str


@pytest.fixture
def flaky() -> Flaky:
    return Flaky()


@pytest.fixture
def dashboard_app(settings: Settings, flaky: Flaky,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[ichido.App]:
    """Events go dead on their first failure, so a test needs no retries to wait for."""
    monkeypatch.setenv("ICHIDO_DASHBOARD_TOKEN", f"alice:{TOKEN}")
    # The overview's own reload would race the tests' navigations; pages that wait for a
    # retry reload every 2 s whatever this says.
    monkeypatch.setenv("ICHIDO_DASHBOARD_REFRESH", "10m")
    app = ichido.App(settings.with_(max_attempts=1), workers=0)
    app.install(Dashboard())

    @app.on("payment_intent.succeeded")
    def paid(event: ichido.Event, tx) -> None:
        return None

    @app.on("charge.refunded")
    def refunded(event: ichido.Event, tx) -> None:
        if flaky.failing:
            raise RuntimeError("the bank refused the refund (test)")

    app.migrate()
    yield app
    app.close()  # what a test's requests started (a served app closes itself)


def deliver(client: TestClient, body: bytes) -> None:
    answer = client.post("/webhooks/stripe", content=body, headers=signed_headers(body))
    assert answer.status_code == 200, answer.text


def store_events(app: ichido.App, client: TestClient) -> Stored:
    """One processed payment, two dead refunds, and one whose metadata is hostile markup."""
    object_id = "pi_dashboard_0001"
    paid = make_event("payment_intent.succeeded", id="evt_paid_0001", object_id=object_id)
    dead = [make_event("charge.refunded", id=f"evt_refund_{n:04d}",
                       obj={"id": f"ch_{n}", "object": "charge", "payment_intent": object_id})
            for n in range(2)]
    hostile = make_event("payment_intent.succeeded", id="evt_hostile_0001", obj={
        "id": "pi_hostile", "object": "payment_intent",
        "metadata": {"note": XSS, "link": "javascript:alert(1)",
                     "leak": "whsec_should_never_show_0123"}})
    for body in (paid, *dead, hostile):
        deliver(client, body)
    app.worker().drain()
    return Stored(paid="evt_paid_0001", dead=["evt_refund_0000", "evt_refund_0001"],
                  hostile="evt_hostile_0001", object_id=object_id)


def login(client: TestClient, token: str = TOKEN) -> str:
    """Log in and return the session's CSRF token (read from the page, as a browser would)."""
    answer = client.post("/dashboard/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = client.get("/dashboard/")
    marker = 'name="csrf" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start:page.text.index('"', start)]
