"""The background loops' two shapes: ``poll`` (run a step until stopped, sleeping when idle)
and ``drain`` (run it until it finds nothing). The worker, the outbox dispatcher, recovery's
loops and an application's own all run on these, so none of them imports another to get them.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ichido.errors import IchidoError

log = logging.getLogger("ichido.worker")  # the name these lines have always been logged under


def poll(name: str, step: Callable[[], int], stop: threading.Event,
         wake: threading.Event | None, interval: float) -> None:
    """Run ``step`` until ``stop``; when it found nothing to do, sleep until ``wake`` (if there
    is one: whoever sets ``stop`` must set it too) or ``interval``, or until ``stop`` when there
    is none, so that a long interval never holds a shutdown up. Storage errors and bugs are
    logged and backed off: they never end the thread."""
    while not stop.is_set():
        try:
            busy = step()
        except IchidoError as exc:
            log.warning("%s: storage error, backing off: %s", name, exc)
            busy = 0
            stop.wait(1.0)
        except Exception:  # a bug must not silently end the thread: log it, back off, go on
            log.exception("%s: unexpected error, backing off", name)
            busy = 0
            stop.wait(1.0)
        if busy:
            continue
        if wake is None:
            stop.wait(interval)
        else:
            wake.wait(interval)
            wake.clear()


def drain(step: Callable[[], int], max_rounds: int = 1_000_000) -> int:
    """Call ``step`` until it does nothing; return the total it did."""
    total = 0
    for _ in range(max_rounds):
        done = step()
        if not done:
            break
        total += done
    return total
