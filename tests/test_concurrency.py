"""I8 (docs/invariants.md): copies of one event arriving at the same instant, at two receivers
handled by four workers on one store, still give one effect; the unique key is the check, not a
prior look-up.
Two copies' answers are one "accepted" and one "duplicate", never two "accepted"."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

import httpx

from ichido.config import Settings

from tests.support import (
    ServerProcess,
    asgi_client,
    effect_counts,
    event_id_of,
    in_process_app,
    make_event,
    open_store,
    post_async,
    record_effect,
    run_async,
    start_server,
    wait_until,
)


def deliver(server: ServerProcess, body: bytes, client: httpx.Client) -> httpx.Response:
    """Post as Stripe does: a 503 (storage busy) is retried, and the retry is what counts."""
    for _ in range(10):
        response = server.post(body, client)
        if response.status_code != 503:
            return response
    return response


def test_two_receivers_with_two_workers_each_apply_every_event_once(database_url: str) -> None:
    servers = [start_server(database_url, workers=2) for _ in range(2)]
    bodies = [make_event("payment_intent.succeeded") for _ in range(200)]
    pairs = 4  # each pair of threads sends its slice, one event at a time, to both servers at once
    answers: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def send(server: ServerProcess, chunk: list[bytes], barrier: threading.Barrier) -> None:
        try:
            with httpx.Client(timeout=60) as client:
                for body in chunk:
                    barrier.wait(timeout=60)
                    response = deliver(server, body, client)
                    with lock:
                        answers[event_id_of(body)].append(
                            (response.status_code, response.json()))
        except BaseException as exc:  # reported below, not lost in the thread
            barrier.abort()
            errors.append(exc)

    threads = []
    for index in range(pairs):
        barrier = threading.Barrier(2)
        chunk = bodies[index::pairs]
        threads += [threading.Thread(target=send, args=(server, chunk, barrier))
                    for server in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        inbox = open_store(database_url)
        wait_until(lambda: inbox.stats()["processed"] == len(bodies), message="all processed")
    finally:
        for server in servers:
            server.stop()

    assert len(answers) == len(bodies)
    for event_id, pair in answers.items():
        assert [status for status, _ in pair] == [200, 200], pair
        assert sorted(doc["status"] for _, doc in pair) == ["accepted", "duplicate"], pair
    assert effect_counts(inbox) == {event_id_of(body): 1 for body in bodies}
    stats = inbox.stats()
    assert stats["unique"] == len(bodies)
    assert stats["received"] == 2 * len(bodies)
    assert stats["received"] == (stats["unique"] + stats["duplicates_cache"]
                                 + stats["duplicates_durable"])


def test_concurrent_copies_at_one_receiver_are_accepted_once(settings: Settings) -> None:
    """Sixteen copies in flight at once in one receiver: its group commit may put them in one
    batch or several; either way one is accepted and the rest are duplicates."""
    app = in_process_app(settings)
    app.on("payment_intent.succeeded")(record_effect)
    body = make_event("payment_intent.succeeded")
    copies = 16

    async def scenario() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            answers = await asyncio.gather(*(post_async(client, body) for _ in range(copies)))
        await app.shutdown()
        return list(answers)

    answers = [response.json() for response in run_async(scenario)]
    assert sorted(a["status"] for a in answers) == ["accepted"] + ["duplicate"] * (copies - 1)
    app.worker().drain()
    assert effect_counts(app.database) == {event_id_of(body): 1}
    stats = app.inbox.stats()
    assert (stats["received"], stats["unique"]) == (copies, 1)
    assert stats["duplicates_cache"] + stats["duplicates_durable"] == copies - 1
