"""PostgreSQL restarted mid-stream, under real ``ichido serve`` processes and the local Stripe:
receivers answer 503 while it is down, never 200 for an event they did not store (I1,
docs/invariants.md); the emulator's retries deliver later; nothing lost, nothing applied twice
(I2).

The test restarts a PostgreSQL server of its own (``ichido.testing.servers.PostgresCluster``: initdb
into a temp dir, on a free port) and uses a Redis of its own: the machine's shared servers,
and whoever else runs tests on them, never notice.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

import httpx
import pytest

from ichido.emulator import Emulator, EmulatorServer
from tests.support import (
    SECRET,
    PostgresCluster,
    RedisServer,
    ServerProcess,
    deliver,
    effect_counts,
    event_id_of,
    make_event,
    open_store,
    run_cli,
    signed_headers,
    stop_all,
    wait_until,
)

EFFECTS_APP = "tests.apps.effects:app"
API_KEY = "sk_test_ichido_faults"
HANDLED = ("payment_intent.succeeded", "charge.succeeded")  # the types tests.apps.effects applies


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except RuntimeError as exc:  # no server binaries on this machine
        pytest.skip(str(exc))
    with cluster:
        done = run_cli("migrate", "--app", EFFECTS_APP, database_url=cluster.url)
        assert done.returncode == 0, done.stderr
        yield cluster


# -- PostgreSQL restarted mid-stream -----------------------------------------------------------

def pay_by_card(stripe: httpx.Client, count: int) -> None:
    """``count`` card payments at the local Stripe: three events each."""
    for _ in range(count):
        response = stripe.post("/v1/payment_intents", data={
            "amount": "1500", "currency": "jpy", "confirm": "true",
            "payment_method": "pm_card_visa", "allowed_payment_method_types[0]": "card"})
        assert response.status_code == 200, response.text


def all_delivered_and_done(url: str, emulator: Emulator, extra: set[str]) -> bool:
    """Every event the emulator made (and ``extra``) is stored and finished, nothing in flight."""
    if emulator.sender.busy():
        return False
    inbox = open_store(url)
    try:
        stored = {r.id: r.status for r in inbox.list(limit=100_000)}
    finally:
        inbox.close()
    wanted = {event["id"] for event in emulator.events()} | extra
    return all(stored.get(i) in ("processed", "ignored") for i in wanted)


def test_postgres_restart_mid_stream_answers_503_then_loses_nothing_and_applies_once(
        private_postgres: PostgresCluster) -> None:
    fault_db = private_postgres.url
    seen_tier = RedisServer().start()
    env = {"ICHIDO_REDIS_URL": seen_tier.url, "ICHIDO_LEASE": "2s"}
    receivers = [ServerProcess(fault_db, workers=1, env=env) for _ in range(2)]
    emulator = Emulator(webhook_urls=[f"{r.url}/webhooks/stripe" for r in receivers],
                        webhook_secrets=[SECRET], api_key=API_KEY, duplicate_rate=0.3,
                        reorder_window=0.2, time_scale=0.001, seed=5)
    server = EmulatorServer(emulator).start()
    stripe = httpx.Client(base_url=server.url, timeout=30,
                          headers={"Authorization": f"Bearer {API_KEY}"})
    probes = [make_event("payment_intent.succeeded") for _ in range(4)]
    answered: list[tuple[int, int, dict, float]] = []  # receiver, status, answer, when
    health: list[int] = []

    def probe(index: int, body: bytes) -> None:
        with httpx.Client(timeout=60) as client:
            response = client.post(f"{receivers[index % 2].url}/webhooks/stripe", content=body,
                                   headers=signed_headers(body))
        answered.append((index % 2, response.status_code, response.json(), time.monotonic()))

    def failed_deliveries() -> int:
        return sum(e["failed"] for e in emulator.stats()["endpoints"].values())

    def refused_by_both() -> bool:  # the probes, the health checks and Stripe's deliveries
        return len(health) == 2 and failed_deliveries() > failed_before and all(
            any(r == n and status == 503 for r, status, _, _ in answered) for n in (0, 1))

    def check_health(url: str) -> None:
        # A write probe runs at most once a second (ichido.health): one from just before the
        # outage may still answer 200 for up to that long, so ask until the outage shows.
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=60).status_code == 503,
                   timeout=60, interval=0.1, message=f"{url}/healthz to say 503")
        health.append(503)

    try:
        pay_by_card(stripe, 12)
        wait_until(lambda: all_delivered_and_done(fault_db, emulator, set()),
                   message="the events before the outage")
        failed_before = failed_deliveries()

        private_postgres.stop()  # every connection is cut
        try:
            threads = [threading.Thread(target=probe, args=(i, body))
                       for i, body in enumerate(probes)]
            threads += [threading.Thread(target=check_health, args=(r.url,)) for r in receivers]
            for thread in threads:  # all at once; the outage ends once both have said 503
                thread.start()
            pay_by_card(stripe, 8)  # Stripe goes on making events; their deliveries fail now
            wait_until(refused_by_both, timeout=60, interval=0.05,
                       message="both receivers to refuse while PostgreSQL is down")
        finally:
            private_postgres.start()
        back_at = time.monotonic()
        for thread in threads:
            thread.join(90)

        # While it was down, no receiver said 200 to anything: nothing was stored then. (A
        # probe still waiting when it came back may be stored and answered 200 after that.)
        assert health == [503, 503]
        assert len(answered) == len(probes)
        during = [(status, doc) for _, status, doc, when in answered if when < back_at]
        assert during and all(status == 503 and doc["error"]["code"] == "storage_unavailable"
                              for status, doc in during), answered
        assert {status for _, status, _, _ in answered} <= {200, 503}

        pay_by_card(stripe, 12)
        with httpx.Client(timeout=60) as client:  # the probes' sender retries, as Stripe does
            resent = [deliver(receivers[i % 2].url, body, client).status_code
                      for i, body in enumerate(probes)]
        assert resent == [200] * len(probes)
        probe_ids = {event_id_of(body) for body in probes}
        wait_until(lambda: all_delivered_and_done(fault_db, emulator, probe_ids),
                   timeout=120, interval=0.2, message="every event delivered and processed")
    finally:
        server.stop()
        stripe.close()
        stop_all(*receivers)
        seen_tier.close()

    sent = emulator.stats()
    assert sum(e["gave_up"] for e in sent["endpoints"].values()) == 0
    events = emulator.events()
    assert len(events) == 32 * 3
    inbox = open_store(fault_db)
    applied = [e["id"] for e in events if e["type"] in HANDLED] + sorted(probe_ids)
    assert effect_counts(inbox) == dict.fromkeys(applied, 1)
    stats = inbox.stats()
    assert stats["unique"] == len(events) + len(probes)
    assert stats["dead"] == 0
    assert stats["received"] == (stats["unique"] + stats["duplicates_cache"]
                                 + stats["duplicates_durable"])
    inbox.close()
