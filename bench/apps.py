"""The benchmarks' ichido app: one simple handler that records each effect as a row.

Like tests/apps/effects.py, the ``effects`` table has no unique constraint, so an event applied
twice would show as two rows (the benchmarks check that none is). Every event type the bench
stream sends has the handler. Serve it with ``ichido serve --app bench.apps:app``.
"""

from __future__ import annotations

import ichido

from bench.stream import EVENT_TYPES

app = ichido.App(schema=[("bench_effects", 1, [
    "CREATE TABLE effects (event_id TEXT NOT NULL, type TEXT NOT NULL, attempt INTEGER NOT NULL)",
])])


@app.on(*EVENT_TYPES)
def record_effect(event: ichido.Event, tx) -> None:
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (event.id, event.type, event.attempt))



# The slow-handler benchmark's app: the same effects, plus `bench.slow` events whose handler
# sleeps BENCH_SLEEP seconds inside its transaction (touching BENCH_STARTED_DIR/<id> first),
# as a handler stuck on a slow downstream would.
slow_app = ichido.App(schema=list(app.schema))
slow_app.on(*EVENT_TYPES)(record_effect)


@slow_app.on("bench.slow")
def sleep_in_the_transaction(event: ichido.Event, tx) -> None:
    import os
    import time
    from pathlib import Path

    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (event.id, event.type, event.attempt))
    started = os.environ.get("BENCH_STARTED_DIR")
    if started:
        (Path(started) / event.id).touch()
    time.sleep(float(os.environ.get("BENCH_SLEEP", "30")))


# The AWS torture's app (bench/torture/aws.py): one effects item per application in
# EFFECTS_TABLE (a random sort key, so a second application shows as a second item), written
# in the marker's transaction; the event named by BENCH_POISON always fails.
dynamodb_app = ichido.App(workers=0)


@dynamodb_app.on(*EVENT_TYPES)
def record_effect_item(event: ichido.Event, tx) -> None:
    import os
    import uuid

    if event.id == os.environ.get("BENCH_POISON"):
        raise RuntimeError("the torture's poison event: this handler never succeeds")
    tx.put(os.environ["EFFECTS_TABLE"], {"pk": event.id, "sk": uuid.uuid4().hex,
                                         "attempt": event.attempt})
