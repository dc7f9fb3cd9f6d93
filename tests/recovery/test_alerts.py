"""Alerts: each condition raises one, through the outbox, to a Slack-compatible webhook on
loopback and the log; a storm sends one message."""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ichido.event import parse_delivery
from ichido.outbox import OutboxDispatcher
from ichido.recovery.alerts import Alerts, AlertSender
from ichido.recovery.reconcile import ReconcileReport, recovery_counts
from ichido.recovery.settings import RecoverySettings
from ichido.serving import ThreadedServer
from tests.support import in_process_app, make_event, signed_headers


class Slack:
    """An incoming-webhook endpoint on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

        async def hook(request: Request) -> Response:
            self.messages.append(orjson.loads(await request.body()))
            return Response("ok")

        self.server = ThreadedServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
        self.url = f"{self.server.start().url}/hook"


@pytest.fixture
def slack() -> Iterator[Slack]:
    hook = Slack()
    yield hook
    hook.server.stop()


@pytest.fixture
def app(settings, slack):
    app = in_process_app(settings, max_attempts=2)
    app.recovery = RecoverySettings(alert_webhook_url=slack.url, alert_backlog_seconds=300)
    yield app
    app.close()


def send(app) -> int:
    """What ``serve`` runs: the outbox dispatcher with the alert sender."""
    sender = AlertSender(app.recovery, lambda: app.database)
    return OutboxDispatcher(lambda: app.database, {"alert": sender}).drain()


def kinds(slack: Slack) -> list[str]:
    return [m["text"].split("[", 1)[1].split("]", 1)[0] for m in slack.messages]


def test_an_alert_storm_sends_one_message(app, slack, caplog) -> None:
    alerts = Alerts(app.inbox, app.recovery, clock=lambda: 1_000_000.0)
    opened = 0
    for n in range(1000):
        with app.database.transaction() as tx:
            opened += alerts.raise_alert(tx, "dead_letter", f"evt_{n}", f"evt_{n} is dead")
    assert opened == 1
    assert send(app) == 1
    [message] = slack.messages
    assert "evt_0 is dead" in message["text"] and "+999 more" in message["text"]
    assert "ichido alert [dead_letter]" in caplog.text
    assert send(app) == 0 and len(slack.messages) == 1  # sent once, whatever runs again
    later = Alerts(app.inbox, app.recovery, clock=lambda: 1_000_000.0 + 600)
    with app.database.transaction() as tx:
        assert later.raise_alert(tx, "dead_letter", "evt_x", "evt_x is dead")  # a new window
    send(app)
    assert len(slack.messages) == 2
    assert recovery_counts(app.database)["alerts"] == 2


def test_first_failure_of_a_type_and_dead_letters(app, slack) -> None:
    def broken(event, tx) -> None:
        raise RuntimeError("downstream is down")

    app.on("invoice.paid")(broken)
    app.inbox.accept([parse_delivery(make_event("invoice.paid")) for _ in range(3)])
    alerts = Alerts(app.inbox, app.recovery)
    app.worker().run_once()  # every event fails its first attempt
    assert alerts.check() == 1  # one type failing: one "first failure", no dead letter yet
    deadline = time.monotonic() + 30
    while app.inbox.stats()["dead"] < 3 and time.monotonic() < deadline:
        app.worker().run_once()
    assert app.inbox.stats()["dead"] == 3
    assert alerts.check() == 1  # three dead letters in one window: one alert
    assert alerts.check() == 0  # already looked at
    send(app)
    assert kinds(slack) == ["first_failure", "dead_letter"]
    assert "+2 more" in slack.messages[1]["text"]


def test_a_backlog_older_than_the_threshold(app, slack) -> None:
    app.inbox.accept([parse_delivery(make_event("invoice.paid"))])  # nobody processes it
    assert Alerts(app.inbox, app.recovery).check() == 0
    assert Alerts(app.inbox, app.recovery, clock=lambda: time.time() + 301).check() == 1
    send(app)
    assert kinds(slack) == ["backlog"]


def test_the_reconciler_finding_missed_events(app, slack) -> None:
    report = ReconcileReport("default", reconciled=4, found=["evt_a", "evt_b"])
    Alerts(app.inbox, app.recovery).missed_events(report)
    send(app)
    assert kinds(slack) == ["reconciler_found"] and "evt_a" in slack.messages[0]["text"]


def test_a_rising_share_of_refused_signatures(app, slack) -> None:
    alerts = Alerts(app.inbox, app.recovery)
    alerts.check()  # the baseline
    with ThreadedServer(app) as receiver, httpx.Client(base_url=receiver.url) as client:
        for _ in range(3):
            body = make_event()
            assert client.post("/webhooks/stripe", content=body,
                               headers=signed_headers(body)).status_code == 200
        assert alerts.check() == 0  # healthy traffic
        for _ in range(12):  # the secret was rolled at Stripe only
            body = make_event()
            headers = signed_headers(body, secrets=("whsec_rolled_at_stripe_only",))
            assert client.post("/webhooks/stripe", content=body, headers=headers
                               ).status_code == 400
        assert alerts.check() == 1
        send(app)
    assert kinds(slack) == ["signature_failures"]
