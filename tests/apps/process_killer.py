"""An ichido app whose handlers and outbox sender can kill their own process, as an
out-of-memory kill or a crash in a C extension would: no exception, no ``finally``, no lease
given back. Its ``effects`` table is tests/apps/effects.py's (no unique constraint: a second
application shows up as a second row).

- ``test.kills_process``: the handler sends SIGKILL to its own process.
- ``test.exits_process``: the handler ends its process with ``os._exit(137)``.
- ``test.kills_slowly``: the handler works for 200 ms, then sends SIGKILL to its process.
- ``test.notify``: the handler queues an outbox message keyed by the event's id; sending it
  appends that key to the file ``SENT_LOG`` (one line per send). ``test.notify_kills``
  queues one whose sending kills the process instead.
- ``test.slow``: one effects row, after 50 ms of work (so that worker threads overlap).
- every other type of ``EFFECT_TYPES``: one effects row.
"""

from __future__ import annotations

import os
import signal
import time

import ichido
from ichido.outbox import enqueue
from tests.apps.effects import EFFECT_TYPES
from tests.apps.effects import app as effects_app

app = ichido.App(schema=effects_app.schema)


def die(how: str) -> None:
    if how == "exit":
        os._exit(137)
    os.kill(os.getpid(), signal.SIGKILL)


@app.on(*EFFECT_TYPES, "test.kills_process", "test.exits_process", "test.kills_slowly",
        "test.slow")
def record_effect(event: ichido.Event, tx) -> None:
    if event.type == "test.kills_slowly":
        time.sleep(0.2)
    if event.type in ("test.kills_process", "test.kills_slowly"):
        die("kill")
    if event.type == "test.exits_process":
        die("exit")
    if event.type == "test.slow":
        time.sleep(0.05)
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (event.id, event.type, event.attempt))


@app.on("test.notify", "test.notify_kills")
def queue_notice(event: ichido.Event, tx) -> None:
    enqueue(tx, "notice", event.id, {"kills": event.type == "test.notify_kills"})


def send_notice(key: str, payload: dict) -> None:
    if payload["kills"]:
        die("kill")
    descriptor = os.open(os.environ["SENT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, f"{key}\n".encode())
    finally:
        os.close(descriptor)


app.outbox.add_sender("notice", send_notice)
