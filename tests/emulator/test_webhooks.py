"""The webhook sender against a real receiver on loopback: signatures, retries, chaos."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import pytest
import stripe
import typer
from typer.testing import CliRunner

from ichido.emulator import Emulator, EmulatorServer
from ichido.emulator.cli import emulator as emulator_command
from tests.emulator.support import KEY, SECRET, Receiver, card_params, client

FAST = {"time_scale": 1e-5}  # Stripe's three days of retries in about 2.6 seconds


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def serve(receivers: list[Receiver], **options: Any) -> EmulatorServer:
    options.setdefault("webhook_secrets", [SECRET])
    emu = Emulator(api_key=KEY, webhook_urls=[r.url for r in receivers], **options)
    return EmulatorServer(emu).start()


def pay_by_card(server: EmulatorServer, count: int = 1) -> list[str]:
    sdk = client(server.url)
    for i in range(count):
        sdk.v1.payment_intents.create(params=card_params(amount=1000 + i))
    assert server.emulator.settle(15)
    return [e["id"] for e in server.emulator.events()]


def test_every_event_reaches_every_endpoint_signed(receiver: Receiver) -> None:
    second = Receiver().start()
    server = serve([receiver, second])
    try:
        sent = pay_by_card(server)
        for endpoint in (receiver, second):
            assert sorted(endpoint.ids()) == sorted(sent)
            for delivery in endpoint.deliveries:
                stripe.WebhookSignature.verify_header(delivery.body, delivery.signature,
                                                      SECRET, tolerance=300)
                assert delivery.event["pending_webhooks"] in (1, 2)
        events = client(server.url).v1.events.list(params={"delivery_success": True}).data
        assert len(events) == 3 and all(e.pending_webhooks == 0 for e in events)
        stats = server.emulator.stats()
        assert stats["endpoints"][receiver.url]["succeeded"] == 3
        assert stats["attempts"] == 6 and stats["duplicates_sent"] == 0
    finally:
        server.stop()
        second.stop()


def test_secret_roll_signs_with_both_secrets(receiver: Receiver) -> None:
    server = serve([receiver], webhook_secrets=["whsec_old", "whsec_new"])
    try:
        pay_by_card(server)
        delivery = receiver.deliveries[0]
        assert delivery.signature.count("v1=") == 2
        for secret in ("whsec_old", "whsec_new"):
            stripe.WebhookSignature.verify_header(delivery.body, delivery.signature, secret,
                                                  tolerance=300)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(delivery.body, delivery.signature,
                                                  "whsec_other", tolerance=300)
    finally:
        server.stop()


def test_500s_are_retried_until_a_2xx() -> None:
    flaky = Receiver(answer=lambda delivery, n: 500 if n <= 2 else 200).start()
    server = serve([flaky], **FAST)
    try:
        sent = pay_by_card(server)
        assert Counter(flaky.ids()) == {event_id: 3 for event_id in sent}
        stats = server.emulator.stats()
        assert stats["retries"] == 6 and stats["endpoints"][flaky.url] == {
            "succeeded": 3, "failed": 6, "gave_up": 0}
        assert stats["events_pending_delivery"] == 0
    finally:
        server.stop()
        flaky.stop()


def test_an_endpoint_that_never_answers_2xx_is_given_up_and_stays_pending() -> None:
    broken = Receiver(answer=lambda delivery, n: 503).start()
    server = serve([broken], retry_delays=(0.01, 0.02))
    try:
        sent = pay_by_card(server)
        assert Counter(broken.ids()) == {event_id: 3 for event_id in sent}
        assert server.emulator.stats()["endpoints"][broken.url]["gave_up"] == 3
        pending = client(server.url).v1.events.list(params={"delivery_success": False}).data
        assert len(pending) == 3 and all(e.pending_webhooks == 1 for e in pending)
    finally:
        server.stop()
        broken.stop()


def test_a_slow_answer_is_a_timeout_and_is_retried() -> None:
    slow = Receiver(delay=lambda n: 1.5 if n == 1 else 0.0).start()
    server = serve([slow], timeout=0.5, **FAST)
    try:
        sent = pay_by_card(server)
        assert Counter(slow.ids()) == {event_id: 2 for event_id in sent}
        assert server.emulator.stats()["endpoints"][slow.url]["failed"] == 3
    finally:
        server.stop()
        slow.stop()


def test_duplicates_arrive_and_are_counted_once(receiver: Receiver) -> None:
    server = serve([receiver], duplicate_rate=1.0, seed=7)
    try:
        sent = pay_by_card(server, count=3)
        assert Counter(receiver.ids()) == {event_id: 2 for event_id in sent}
        stats = server.emulator.stats()
        assert stats["duplicates_sent"] == len(sent) == 9
        assert all(e["pending_webhooks"] == 0 for e in server.emulator.events())
    finally:
        server.stop()


def test_fail_then_retry_delivers_an_acknowledged_event_again(receiver: Receiver) -> None:
    server = serve([receiver], fail_rate=1.0, **FAST)
    try:
        sent = pay_by_card(server)
        assert Counter(receiver.ids()) == {event_id: 2 for event_id in sent}
        assert server.emulator.stats()["forced_failures"] == 3
    finally:
        server.stop()


def test_reorder_window_shuffles_one_objects_events(receiver: Receiver) -> None:
    server = serve([receiver], reorder_window=0.2, seed=3)
    try:
        pay_by_card(server, count=12)  # each intent: .created and .succeeded in one request
        created = [e["id"] for e in server.emulator.events()]
        arrived = receiver.ids()
        assert sorted(arrived) == sorted(created)
        by_object: dict[str, list[str]] = {}
        for event in server.emulator.events():
            by_object.setdefault(event["data"]["object"]["id"], []).append(event["id"])
        out_of_order = [ids for ids in by_object.values()
                        if [i for i in arrived if i in ids] != ids]
        assert out_of_order, "no object's events arrived out of creation order"
    finally:
        server.stop()


def test_delay_holds_deliveries_but_loses_none(receiver: Receiver) -> None:
    server = serve([receiver], delay=0.2, duplicate_rate=0.5, reorder_window=0.1, seed=1)
    try:
        sent = pay_by_card(server, count=2)
        assert set(receiver.ids()) == set(sent)
        assert len(receiver.ids()) == len(sent) + server.emulator.stats()["duplicates_sent"]
    finally:
        server.stop()


def test_a_backlog_is_sent_a_few_requests_at_a_time() -> None:
    # All first attempts are held, then released together: 36 deliveries at once, well over
    # the bound, to an endpoint slow enough that they would overlap if nothing paced them.
    slow = Receiver(delay=lambda n: 0.05).start()
    server = serve([slow], webhook_concurrency=4, delay=0.5)
    try:
        sent = pay_by_card(server, count=12)
        assert len(sent) == 36
        assert Counter(slow.ids()) == {event_id: 1 for event_id in sent}
        assert 1 < slow.most_in_flight <= 4  # they overlapped, never past the bound
        stats = server.emulator.stats()
        assert stats["endpoints"][slow.url] == {"succeeded": 36, "failed": 0, "gave_up": 0}
    finally:
        server.stop()
        slow.stop()


def test_cli_refuses_a_webhook_url_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    app = typer.Typer()
    app.command()(emulator_command)
    result = CliRunner().invoke(app, ["--webhook-url", "http://127.0.0.1:9/hook"])
    assert result.exit_code == 2 and "webhook-secret" in result.output
