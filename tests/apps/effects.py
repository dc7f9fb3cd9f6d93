"""An ichido app for the subprocess tests. Its handler records each effect in a table with NO
unique constraint, so a second application of any event shows up as a second row.

Failure knobs, from the environment:
- EFFECTS_FAIL_TIMES=N: `invoice.paid` fails on its first N attempts, then succeeds.
- EFFECTS_FIX_FILE=path: `test.always_fails` fails until that file exists (the "fix").
"""

from __future__ import annotations

import os

import ichido

app = ichido.App(schema=[("test_effects", 1, [
    "CREATE TABLE effects (event_id TEXT NOT NULL, type TEXT NOT NULL, attempt INTEGER NOT NULL)",
])])

EFFECT_TYPES = ("payment_intent.succeeded", "charge.succeeded", "invoice.paid",
                "test.always_fails")


@app.on(*EFFECT_TYPES)
def record_effect(event: ichido.Event, tx) -> None:
    if event.type == "invoice.paid" and event.attempt <= int(os.environ.get("EFFECTS_FAIL_TIMES", "0")):
        raise RuntimeError(f"planned failure on attempt {event.attempt}")
    if event.type == "test.always_fails":
        fix = os.environ.get("EFFECTS_FIX_FILE")
        if not fix or not os.path.exists(fix):
            raise RuntimeError("the downstream is broken")
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (event.id, event.type, event.attempt))


# Added for the crash tests: a handler that can be held mid-batch, inside its transaction.
# - EFFECTS_STARTED_FILE=path: touched when a `test.gated` event starts to be handled.
# - EFFECTS_GATE_FILE=path: `test.gated` waits (up to 120 s) until that file exists.
@app.on("test.gated")
def gated_effect(event: ichido.Event, tx) -> None:
    import time
    from pathlib import Path

    started = os.environ.get("EFFECTS_STARTED_FILE")
    if started:
        Path(started).touch()
    gate = os.environ.get("EFFECTS_GATE_FILE")
    deadline = time.monotonic() + 120
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise RuntimeError("gate never opened")
        time.sleep(0.01)
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (event.id, event.type, event.attempt))
