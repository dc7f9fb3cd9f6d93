"""What ``/healthz`` answers: whether a delivery can be stored now.

A read of the store says little: a full disk or a deleted directory still reads (an open file
outlives its directory), while every delivery fails or is written in vain. So health is the
last delivery's outcome (a failure is remembered until a delivery succeeds again, or for
``FAILURE_MEMORY`` seconds without deliveries), then a write probe of what the receiver writes
(``HealthProbe.probe``), run at most once per ``PROBE_INTERVAL``: a poller cannot turn it into load.
Whether the store's files are still in place is checked on every request (two ``stat`` calls).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Callable, Protocol

from ichido.errors import StorageUnavailable

if TYPE_CHECKING:
    from ichido.group_commit import GroupCommit

PROBE_INTERVAL = 1.0
FAILURE_MEMORY = 30.0


class HealthProbe(Protocol):
    """What the health check asks of the store the receiver writes to (every inbox)."""

    def check_in_place(self) -> None:
        """Raise ``StorageUnavailable`` if the store's files were deleted or replaced."""

    def probe(self) -> None:
        """Raise ``StorageUnavailable`` unless a delivery can be stored now."""


class Health:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._probed_at = float("-inf")
        self._error: StorageUnavailable | None = None

    async def check(self, inbox: HealthProbe, group: GroupCommit | None = None) -> None:
        """Raise ``StorageUnavailable``, with the reason, unless a delivery can be stored now.
        ``group``: the receiver's ``GroupCommit``, when it has started."""
        failure = None if group is None else group.last_failure
        if failure is not None:
            at, reason = failure
            if self._clock() - at < FAILURE_MEMORY:
                raise StorageUnavailable(f"the last delivery could not be stored: {reason}")
        inbox.check_in_place()
        await asyncio.to_thread(self._probe, inbox)

    def _probe(self, inbox: HealthProbe) -> None:
        with self._lock:
            if self._clock() - self._probed_at >= PROBE_INTERVAL:
                try:
                    inbox.probe()
                    self._error = None
                except StorageUnavailable as exc:
                    self._error = exc
                self._probed_at = self._clock()
            if self._error is not None:
                raise self._error
