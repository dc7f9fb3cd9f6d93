"""Endpoints taken down or disabled, Stripe giving up after three days, and the Events API
telling the truth about it afterwards (issue 13 item 5). Retries run on the emulator clock."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Iterator

import httpx
import pytest
import stripe

from ichido.emulator import LIVE_RETRY_DELAYS, Emulator, EmulatorServer
from ichido.emulator.endpoints import RETRY_HORIZON
from tests.emulator.schemas import problems
from tests.emulator.support import KEY, SECRET, Receiver, card_params, client

HOUR, DAY = 3600, 86400


def retries_within(seconds: int) -> int:
    """How many of Stripe's retries come due within ``seconds`` of the first attempt."""
    total, count = 0, 0
    for delay in LIVE_RETRY_DELAYS:
        total += delay
        count += total <= seconds
    return count


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class World:
    """An emulator with one endpoint on loopback; retries wait for the emulator clock only."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.emulator = Emulator(api_key=KEY, webhook_urls=[receiver.url],
                                 webhook_secrets=[SECRET])
        self.server = EmulatorServer(self.emulator).start()
        self.sdk = client(self.server.url)
        self.http = httpx.Client(base_url=self.server.url,
                                 headers={"Authorization": f"Bearer {KEY}"})
        self.endpoint = self.emulator.webhook_endpoints()[0]["id"]

    def control(self, action: str) -> dict[str, Any]:
        response = self.http.post(f"/_emulator/webhook_endpoints/{self.endpoint}/{action}")
        assert response.status_code == 200, response.text
        return response.json()

    def pay(self, count: int = 1) -> list[str]:
        before = {e["id"] for e in self.emulator.events()}
        for i in range(count):
            self.sdk.v1.payment_intents.create(params=card_params(amount=1000 + i))
        return [e["id"] for e in self.emulator.events() if e["id"] not in before]

    def attempts_reach(self, count: int) -> None:
        wait_for(lambda: self.emulator.stats()["attempts"] >= count, f"{count} attempts")

    def advance(self, seconds: int) -> None:
        self.emulator.advance(seconds)

    def undelivered(self) -> set[str]:
        return {e.id for e in self.sdk.v1.events.list(
            params={"delivery_success": False, "limit": 100}).auto_paging_iter()}

    def delivered(self) -> set[str]:
        return {e.id for e in self.sdk.v1.events.list(
            params={"delivery_success": True, "limit": 100}).auto_paging_iter()}

    def endpoint_stats(self) -> dict[str, int]:
        return self.emulator.stats()["endpoints"][self.receiver.url]

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def world() -> Iterator[World]:
    receiver = Receiver().start()
    running = World(receiver)
    yield running
    running.close()
    receiver.stop()


def test_a_receiver_down_past_three_days_is_given_up_and_listed_undelivered(
        world: World) -> None:
    assert world.control("down")["reachable"] is False
    sent = world.pay(2)
    world.attempts_reach(len(sent))  # the first attempts failed
    world.advance(RETRY_HORIZON - HOUR)
    attempts = len(sent) * (1 + retries_within(RETRY_HORIZON - HOUR))
    wait_for(lambda: world.endpoint_stats()["failed"] == attempts, "the retries due by now")
    assert world.endpoint_stats()["gave_up"] == 0 and attempts < len(sent) * 17
    world.advance(HOUR + 1)
    assert world.emulator.settle()
    stats = world.endpoint_stats()
    assert stats == {"succeeded": 0, "failed": len(sent) * (len(LIVE_RETRY_DELAYS) + 1),
                     "gave_up": len(sent)}
    assert world.undelivered() == set(sent) and world.delivered() == set()
    world.control("up")
    world.advance(DAY)
    assert world.emulator.settle() and world.receiver.deliveries == []  # Stripe gave up
    assert world.undelivered() == set(sent)  # and the Events API still says so


def test_a_receiver_back_within_three_days_gets_each_event_on_the_next_retry(
        world: World) -> None:
    world.control("down")
    sent = world.pay()
    world.attempts_reach(len(sent))
    world.advance(HOUR)  # the retries 1, 3, 7, 15 and 31 minutes after the first fail
    failures = len(sent) * (1 + retries_within(HOUR))
    wait_for(lambda: world.endpoint_stats()["failed"] == failures, "the first retries")
    world.control("up")
    world.advance(2 * HOUR)  # the next one (63 minutes after the first) goes through
    assert world.emulator.settle()
    assert Counter(world.receiver.ids()) == {event_id: 1 for event_id in sent}
    assert world.delivered() == set(sent) and world.undelivered() == set()
    assert world.endpoint_stats()["gave_up"] == 0


def test_a_disabled_endpoint_gets_no_new_events_and_they_owe_it_nothing(world: World) -> None:
    assert world.control("disable")["status"] == "disabled"
    sent = world.pay()
    world.advance(RETRY_HORIZON + 1)
    assert world.emulator.settle()
    assert world.receiver.deliveries == [] and world.emulator.stats()["attempts"] == 0
    events = [world.sdk.v1.events.retrieve(event_id) for event_id in sent]
    assert all(e.pending_webhooks == 0 for e in events)
    world.control("enable")
    later = world.pay()
    assert world.emulator.settle()
    assert sorted(world.receiver.ids()) == sorted(later)


def test_a_retry_due_while_disabled_is_dropped_for_good(world: World) -> None:
    world.receiver.answer = lambda delivery, n: 500
    sent = world.pay()
    world.attempts_reach(len(sent))
    world.control("disable")
    world.advance(RETRY_HORIZON + 1)
    assert world.emulator.settle()
    assert Counter(world.receiver.ids()) == {event_id: 1 for event_id in sent}  # no retry
    assert world.endpoint_stats()["gave_up"] == len(sent)
    world.control("enable")
    world.advance(DAY)
    assert world.emulator.settle() and len(world.receiver.ids()) == len(sent)
    assert world.undelivered() == set(sent)


def test_re_enabled_before_the_retry_it_keeps_retrying(world: World) -> None:
    world.receiver.answer = lambda delivery, n: 500 if n == 1 else 200
    sent = world.pay()
    world.attempts_reach(len(sent))
    world.control("disable")
    world.control("enable")
    world.advance(60)
    assert world.emulator.settle()
    assert Counter(world.receiver.ids()) == {event_id: 2 for event_id in sent}
    assert world.delivered() == set(sent)


def test_endpoint_controls_list_and_refuse_unknown_ids(world: World) -> None:
    listed = world.http.get("/_emulator/webhook_endpoints").json()
    assert [e["url"] for e in listed["data"]] == [world.receiver.url]
    assert listed["data"][0]["status"] == "enabled" and listed["data"][0]["reachable"]
    missing = world.http.post("/_emulator/webhook_endpoints/we_nope/down")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    assert world.emulator.endpoint(world.receiver.url, reachable=False)["reachable"] is False


def test_events_vanish_after_30_days_while_undelivered(world: World,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    world.control("down")
    sent = world.pay()
    world.attempts_reach(len(sent))
    world.advance(RETRY_HORIZON + 1)
    assert world.emulator.settle()
    monkeypatch.setattr(stripe, "api_key", KEY)
    monkeypatch.setattr(stripe, "api_base", world.server.url)
    assert {e.id for e in stripe.Event.list(delivery_success=False).auto_paging_iter()} == \
        set(sent)
    world.advance(30 * DAY - RETRY_HORIZON)
    assert stripe.Event.list(delivery_success=False).data == []
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Event.retrieve(sent[0])


def test_stripes_webhook_endpoint_api_lists_and_disables(world: World) -> None:
    listed = world.sdk.v1.webhook_endpoints.list().data
    assert [(e.id, e.url, e.status) for e in listed] == [(world.endpoint, world.receiver.url,
                                                          "enabled")]
    assert problems(listed[0].to_dict(), "webhook_endpoint") == []
    disabled = world.sdk.v1.webhook_endpoints.update(world.endpoint, params={"disabled": True})
    assert disabled.status == "disabled"
    assert world.emulator.webhook_endpoints()[0]["status"] == "disabled"
    world.pay()
    assert world.emulator.settle() and world.receiver.deliveries == []
    assert world.sdk.v1.webhook_endpoints.update(
        world.endpoint, params={"disabled": False}).status == "enabled"
    with pytest.raises(stripe.InvalidRequestError):
        world.sdk.v1.webhook_endpoints.retrieve("we_nope")


def test_settle_does_not_wait_for_retries_that_wait_for_the_clock(world: World) -> None:
    """With the receiver down, the first attempts fail and the retries sleep until the clock
    moves: ``settle`` returns at once rather than timing out."""
    world.control("down")
    sent = world.pay()
    assert world.emulator.settle(timeout=60)
    assert world.emulator.stats()["attempts"] == len(sent)
    assert world.endpoint_stats()["gave_up"] == 0 and world.emulator.sender._tasks
