"""Claim events, run their handlers in one transaction with the processed marker, retry, dead-letter.

The worker's own retries, not Stripe's, carry a stored event to ``processed`` or ``dead``: a
redelivery of a stored event is always a duplicate, whatever state the event is in.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from typing import Any, Callable

from ichido.config import Settings
from ichido.errors import LeaseLost
from ichido.event import Event
from ichido.handlers import HandlerRegistry
from ichido.loops import drain, poll
from ichido.metrics import METRICS
from ichido.queue.base import RUNNING, Claim, Status, WorkerQueue, retry_at
from ichido.thin import recovered, twins
from ichido.thin.fetch import FetchStage

log = logging.getLogger("ichido.worker")


class HandlerFailed(Exception):
    """A handler raised; the batch's transaction is rolled back with everything it wrote."""

    def __init__(self, claim: Claim, error: str) -> None:
        super().__init__(claim.id)
        self.claim = claim
        self.error = error


def run_plan(plan: list[tuple[Callable[..., None], Event]], tx: object) -> list[str]:
    """Run each handler on the event it gets; the reasons given when every one of them ignored
    the event (``Event.ignore``), else nothing (it was processed)."""
    reasons: list[str] = []
    every_one_ignored = bool(plan)
    for handler, seen_as in plan:
        before = len(seen_as.ignored)
        handler(seen_as, tx)
        said = seen_as.ignored[before:]
        every_one_ignored = every_one_ignored and bool(said)
        reasons += said
    return reasons if every_one_ignored else []


class Worker:
    def __init__(self, queue: WorkerQueue, handlers: HandlerRegistry, settings: Settings,
                 name: str | None = None, wake: threading.Event | None = None,
                 fetch: FetchStage | None = None) -> None:
        self.queue = queue
        self.handlers = handlers
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.wake = wake or threading.Event()
        #: completes thin events before their transaction (ichido.thin.fetch); without it a
        #: thin event with handlers fails its attempts
        self.fetch = fetch

    def run_once(self) -> int:
        """Claim one batch and process it; return how many events were claimed."""
        claims = self.queue.claim(self.name, self.settings.claim_batch,
                                  self.settings.lease_seconds)
        if claims:
            self.process_batch(claims)
        return len(claims)

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; sleep on ``wake`` (set by an in-process receiver) or poll."""
        poll(f"worker {self.name}", self.run_once, stop, self.wake,
             self.settings.poll_interval_seconds)

    def drain(self) -> int:
        """Process until nothing is due (tests and one-shot runs)."""
        return drain(self.run_once)

    def process(self, claim: Claim) -> None:
        self.process_batch([claim])

    def process_batch(self, claims: list[Claim]) -> None:
        """Run the claims in one transaction; then, one at a time and alone in the process,
        those whose last attempt died in company (its process died, as of an out-of-memory
        kill or a crash in a C extension, or it outlived its lease): had one of them killed
        the process, it dies alone this time, and only its own attempts count (I5)."""
        together, alone = [], []
        for claim in claims:
            if claim.attempt > self.settings.max_attempts:
                self.queue.give_up(claim, "worker")
            elif claim.isolate:
                alone.append(claim)
            else:
                together.append(claim)
        if together:
            with RUNNING.together():
                self._process_together(together)
        for claim in alone:
            with RUNNING.alone():
                if self.queue.alone(claim):  # else another worker took it over
                    self._process_together([claim])

    def _process_together(self, runnable: list[Claim]) -> None:
        """One transaction. If anything in it fails (a handler, a deadlock, a lost lease), it
        is rolled back whole and its events go again one by one, each in a transaction of its
        own, so the culprit is found and retried while the others commit."""
        if self.fetch is not None:  # thin events: what they point to, read before the transaction
            runnable = self.fetch.prepare(runnable)
            if not runnable:
                return
        try:
            self._run_batch(runnable)
        except HandlerFailed as failed:
            if len(runnable) == 1:
                self._record_failure(failed.claim, failed.error)
                return
        except LeaseLost as exc:
            if len(runnable) == 1:
                log.info("%s", exc)
                return
        except Exception:
            if len(runnable) == 1:
                raise
            log.warning("batch of %d failed as a whole; processing one by one", len(runnable),
                        exc_info=True)
        else:
            return
        for claim in runnable:
            self._process_together([claim])

    def _run_batch(self, claims: list[Claim]) -> None:
        with self.queue.processing(claims) as batch:
            plans = {c.id: self._handlers(c) for c in batch.claims}
            # a snapshot and its thin twin are one change: the first to commit applies it
            held = twins.hold(batch.tx, [(c.id, key) for c in batch.claims
                                         if (key := plans[c.id][1]) is not None])
            for claim in batch.claims:
                handlers, _ = plans[claim.id]
                if claim.id in held:
                    batch.finish(claim, Status.TWIN, f"twin of {held[claim.id]}, which applied"
                                                     " the change")
                    continue
                status = Status.PROCESSED if handlers else Status.IGNORED
                reasons: list[str] = []
                try:
                    if handlers:
                        event = (self.fetch.event(claim) if self.fetch is not None
                                 else Event.from_body(claim.body, claim.attempt))
                        plan = self.handlers.admit(event, batch.tx, handlers)
                        status = Status.PROCESSED if plan else Status.STALE
                        reasons = run_plan(plan, batch.tx)
                    if recovered.is_alert(claim.type) and self.fetch is not None:
                        self._alert(batch.tx, claim, bool(handlers))
                except Exception as exc:  # kept with its traceback on the event, retried
                    raise HandlerFailed(claim, traceback.format_exc(limit=-8)) from exc
                if reasons:
                    status = Status.IGNORED
                batch.finish(claim, status, "; ".join(reasons) or None)
        if held:
            METRICS.duplicates.labels("twin").inc(len(held))

    def _handlers(self, claim: Claim) -> tuple[list[Callable[..., None]], str | None]:
        """The handlers of ``claim`` and the change it applies (``twins``). A health alert's
        are those of the event type it names, and its change is the alert's id (once per
        alert, ``ichido.thin.recovered``)."""
        if recovered.is_alert(claim.type) and self.fetch is not None:
            found = self.fetch.impact(claim)
            handlers = self.handlers.for_type(found.event_type) if found is not None else []
            return handlers, (found.alert_id if found is not None and handlers else None)
        handlers = self.handlers.for_type(claim.type)
        return handlers, (twins.change_key(claim.id, claim.type, claim.body) if handlers
                          else None)

    def _alert(self, tx: Any, claim: Claim, handled: bool) -> None:
        """Tell the operator that Stripe failed to generate an event (recovery's alerts)."""
        from ichido.recovery.alerts import generation_failure

        found = self.fetch.impact(claim) if self.fetch is not None else None
        generation_failure(tx, claim.id, recovered.describe(claim.id, found, handled))

    def _record_failure(self, claim: Claim, error: str) -> None:
        settings = self.settings
        self.queue.fail(claim, error, retry_at(claim.attempt, settings.max_attempts,
                                               settings.retry_base_seconds,
                                               settings.retry_cap_seconds))
        log.warning("event %s (%s) failed attempt %d: %s", claim.id, claim.type, claim.attempt,
                    error.strip().splitlines()[-1])
