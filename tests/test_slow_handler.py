"""A slow handler never slows the receiver (issue 16.2), on every backend, the embedded SQLite
default included: while a handler sits inside its transaction (holding SQLite's write lock for
as long as it runs), deliveries are stored and answered 200, and applied once afterwards.

No timing is asserted: the handler waits on a gate file that the test opens only after every
delivery was answered, so each answer provably came while the handler held its transaction. A
receiver that waited on that lock would answer 503 after SQLite's busy timeout instead.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import effect_counts, event_id_of, make_event, open_store, start_server, \
    wait_until


def test_deliveries_are_answered_while_a_handler_holds_its_transaction(
        database_url: str, tmp_path: Path) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    server = start_server(database_url, workers=2, env={
        "EFFECTS_STARTED_FILE": str(started), "EFFECTS_GATE_FILE": str(gate)})
    store = open_store(database_url)
    try:
        gated = make_event("test.gated")
        with httpx.Client(timeout=60) as client:
            assert server.post(gated, client).status_code == 200
            wait_until(started.exists, timeout=60, message="the gated handler to start")
            bodies = [make_event("payment_intent.succeeded") for _ in range(40)]
            answers = [server.post(body, client) for body in bodies + bodies[:10]]
            assert not gate.exists()  # the handler is still inside its transaction
            assert [a.status_code for a in answers] == [200] * 50, [a.text for a in answers]
            assert [a.json()["status"] for a in answers[40:]] == ["duplicate"] * 10
        gate.touch()
        expected = {event_id_of(b): 1 for b in [gated, *bodies]}
        wait_until(lambda: effect_counts(store) == expected, timeout=120,
                   message="every event applied once")
    finally:
        gate.touch()
        server.stop()
        store.close()
