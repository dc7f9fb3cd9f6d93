"""Every v2 object the local Stripe answers or pushes validates against Stripe's v2 schemas.

The schemas are the spec's (``stripe_openapi/v2``, read by ``v2_schemas``); Stripe's own samples
pass the same reading, so a failure here is the emulator's, not the reading's.
"""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from ichido.emulator import Emulator, EmulatorServer
from tests.emulator import v2_schemas
from tests.emulator.support import KEY, Receiver, card_params, client

HEALTH = "v2.core.health.event_generation_failure.resolved"


def test_stripes_own_samples_pass_the_reading() -> None:
    samples = v2_schemas.examples()
    checked = 0
    for kind, entry in samples["thin_event_types"].items():
        if entry["schema_key"] not in v2_schemas.names() or kind == HEALTH:
            continue
        for sample in entry["x-stripeDocsSamples"]:
            if sample["payload"]["object"] == "4242":
                continue  # two v2.core.account samples are placeholders ("4242" everywhere)
            assert v2_schemas.event_problems(sample["response"]) == []
            assert v2_schemas.event_problems(sample["payload"], pushed=True) == []
            checked += 1
    for route, entry in samples["paths"].items():
        for example in entry.get("response_examples", {}).values():
            body = example["value"]
            for item in body["data"] if "next_page_url" in body else [body]:
                name = item.get("object")
                if item.get("deleted"):
                    assert v2_schemas.problems(item, "v2.deleted_object") == [], route
                elif name in ("v2.core.event", "v2.core.event_destination"):
                    assert v2_schemas.problems(item, name) == [], route
                    checked += 1
    assert checked >= 10


def test_the_health_alerts_own_sample_is_its_older_shape() -> None:
    """Stripe's sample of the alert predates its schema (the extract's note): the reading is
    strict enough to tell them apart."""
    sample = v2_schemas.examples()["thin_event_types"][HEALTH]["example"]
    assert any("impact" in p for p in v2_schemas.problems(sample, HEALTH))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def test_everything_the_emulator_says_in_v2_validates(receiver: Receiver) -> None:
    emulator = Emulator(api_key=KEY, generation_failure_rate=0.5, generation_alert_after=60,
                        seed=3)
    answers: list[tuple[dict[str, Any], str]] = []
    with EmulatorServer(emulator) as server, httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        def call(method: str, path: str, schema: str, status: int = 200,
                 **kwargs: Any) -> dict[str, Any]:
            keyed = {"Idempotency-Key": f"key-{len(answers)}"} if method != "GET" else {}
            answer = http.request(method, path, headers=keyed, **kwargs)
            assert answer.status_code == status, answer.text
            answers.append((answer.json(), schema))
            return answer.json()  # type: ignore[no-any-return]

        dest = call("POST", "/v2/core/event_destinations", "v2.core.event_destination", json={
            "name": "thin", "type": "webhook_endpoint", "event_payload": "thin",
            "enabled_events": ["*"], "webhook_endpoint": {"url": receiver.url},
            "include": ["webhook_endpoint.signing_secret", "webhook_endpoint.url"]})
        call("POST", "/v2/core/event_destinations", "v2.core.event_destination", json={
            "name": "snap", "type": "webhook_endpoint", "event_payload": "snapshot",
            "enabled_events": ["*"], "webhook_endpoint": {"url": receiver.url}})
        path = f"/v2/core/event_destinations/{dest['id']}"
        for item in call("GET", "/v2/core/event_destinations?include[0]=webhook_endpoint.url",
                         "list")["data"]:
            answers.append((item, "v2.core.event_destination"))
        call("GET", path, "v2.core.event_destination")
        call("POST", path, "v2.core.event_destination", json={"description": "d",
                                                               "metadata": {"a": "b"}})
        call("POST", path + "/disable", "v2.core.event_destination")
        call("POST", path + "/enable", "v2.core.event_destination")
        call("POST", path + "/ping", "v2.core.event")
        sdk = client(server.url)
        for _ in range(4):
            sdk.v1.payment_intents.create(card_params())
        emulator.advance(60)  # the health alerts for the events never generated
        assert emulator.settle()
        listed = call("GET", "/v2/core/events?limit=100", "list")["data"]
        kinds = {e["type"] for e in listed}
        assert {HEALTH, "v2.core.event_destination.ping"} <= kinds
        assert any(kind.startswith("v1.") for kind in kinds)
        for event in listed:
            call("GET", f"/v2/core/events/{event['id']}", "event")
        call("DELETE", path, "v2.deleted_object")
        call("GET", path, "v2.error", status=404)
        call("GET", "/v2/core/events?limit=0", "v2.error", status=400)
        call("POST", "/v2/core/event_destinations", "v2.error", status=400, json={})
        call("GET", "/v2/core/events?bogus=1", "v2.error", status=400)

    found: list[str] = []
    for body, schema in answers:
        if schema == "list":
            assert set(body) == {"data", "next_page_url", "previous_page_url"}
        elif schema == "event":
            found += v2_schemas.event_problems(body)
        else:
            found += v2_schemas.problems(body, schema)
    pushed = [d.event for d in receiver.deliveries if d.event["object"] == "v2.core.event"]
    assert pushed
    for event in pushed:
        found += v2_schemas.event_problems(event, pushed=True)
    assert found == []
