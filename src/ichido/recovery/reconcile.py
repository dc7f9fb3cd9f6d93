"""The reconciler: what Stripe lists but the inbox never got goes into the same inbox.

Stripe stops retrying after three days and lists events for thirty (docs.stripe.com/api/events,
…/webhooks/process-undelivered-events). Each run, per account:

1. **Cursor walk.** Pages ``GET /v1/events`` (official SDK, newest first, ``created[gte]`` =
   the persisted cursor minus ``overlap``) down to the cursor. The walk's bounds and how far
   down it got are saved after every page, so a crash resumes there; the cursor moves up to
   the walk's top only once the walk is complete.
2. **Undelivered sweep.** Pages ``delivery_success=false`` over the whole thirty days: events
   some endpoint never acknowledged, from before the cursor too.

3. **v2 walk** (``thin_walk``), for an account that sends thin events: ``GET /v2/core/events``
   the same way, with its own resumable cursor.

Every event found goes through ``ReconcileStore.accept`` (dedupe on the id); those new to the
inbox are counted as ``reconciled``. A 429 backs off (exponential, with jitter) and retries the
page.

Prune safety: ``ichido prune`` keeps at least 73 hours, so an event created within the last
72 hours and missing from the inbox was never stored. Older ones might have been stored and
pruned; of those only undelivered ones (``pending_webhooks > 0``) are taken, unless
``include_delivered`` (e.g. for a type the endpoint was not subscribed to).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Iterator, Sequence, cast

import orjson
import stripe

from ichido.db.base import Database
from ichido.event import Delivery, parse_delivery
from ichido.inbox.base import EventFilter
from ichido.inbox.seams import ReconcileStore
from ichido.recovery.report import (  # noqa: F401  # where callers have always found them
    SAFE_WINDOW, ReconcileReport, count, recovery_counts)
from ichido.recovery.thin_walk import ThinWalk, uses_thin

log = logging.getLogger("ichido.reconcile")

RETENTION = 30 * 86400  # Stripe lists events of the last 30 days, no older
PAGE = 100  # Stripe's largest page


class Reconciler:
    """``Reconciler(inbox, client).run()``; ``client`` is a ``stripe.StripeClient``;
    ``database`` (default: the inbox's) keeps the cursor and the counters."""

    def __init__(self, inbox: ReconcileStore, client: stripe.StripeClient, *,
                 database: Database | None = None,
                 account: str | None = None,
                 types: Sequence[str] = (), overlap: int = 300, first_lookback: int = SAFE_WINDOW,
                 include_delivered: bool = False, max_backoff_tries: int = 8,
                 backoff_base: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 on_found: Callable[[ReconcileReport], None] | None = None,
                 thin: bool | None = None) -> None:
        """``thin``: walk ``GET /v2/core/events`` too (``thin_walk``); None: when the account
        has a thin event destination."""
        self.inbox, self.client, self.account = inbox, client, account
        self.database = database if database is not None else inbox.database
        self.types = list(types)
        self.overlap, self.first_lookback = overlap, first_lookback
        self.include_delivered = include_delivered
        self.max_backoff_tries, self.backoff_base, self.sleep = (max_backoff_tries,
                                                                 backoff_base, sleep)
        self.on_found = on_found
        self.thin = thin
        self.name = account or "default"

    # -- the run -----------------------------------------------------------------------------

    def run(self, *, since: int | None = None, dry_run: bool = False) -> ReconcileReport:
        report = ReconcileReport(self.name)
        self._received_version()  # before this run stores anything
        state = self._load()
        top = self._newest()
        now = top if top is not None else int(time.time())
        if state["walk_upper"] is not None and since is None:
            lower, upper, reached = state["walk_lower"], state["walk_upper"], state["walk_reached"]
            log.warning("reconcile %s: resuming an interrupted walk at created <= %s",
                        self.name, reached)
        else:
            lower = since if since is not None else (
                state["created"] - self.overlap if state["created"] is not None
                else now - self.first_lookback)
            upper, reached = now, now
        self._warn_gap(report, state["created"], lower, now)
        filters: dict[str, Any] = {"created": {"gte": lower, "lte": reached}}
        if not dry_run:
            self._save(created=state["created"], walk=(upper, lower, reached))
        for page in self._pages(filters, report):
            self._take(page, report, now, dry_run)
            if not dry_run and page:
                self._save(created=state["created"],
                           walk=(upper, lower, min(e["created"] for e in page)))
        for page in self._pages({"delivery_success": False}, report):
            self._take(page, report, now, dry_run)
        if not dry_run:
            cursor = max(upper, state["created"] or upper)
            self._save(created=cursor, walk=None)
            report.cursor = cursor
        report.thin = self.thin if self.thin is not None else uses_thin(self.client,
                                                                        self.account)
        if report.thin:
            ThinWalk(self).run(report, since=since, dry_run=dry_run)
        if report.reconciled:
            log.warning("reconcile %s: %d missed event(s) %s", self.name, report.reconciled,
                    "would be stored (dry run)" if dry_run else "stored")
            if self.on_found is not None and not dry_run:
                self.on_found(report)
        return report

    def _warn_gap(self, report: ReconcileReport, cursor: int | None, lower: int,
                  now: int) -> None:
        oldest = now - RETENTION
        if cursor is not None and cursor < oldest or lower < oldest:
            start = cursor if cursor is not None and cursor < oldest else lower
            self._warn(report, f"the gap starts {(now - start) / 86400:.1f} days ago, beyond the"
                       " 30 days Stripe's Events API keeps: events older than that are lost for"
                       " good (restore them from a backup or Stripe's data exports)")

    def _warn(self, report: ReconcileReport, message: str) -> None:
        if message not in report.warnings:
            report.warnings.append(message)
            log.warning("reconcile %s: %s", self.name, message)

    # -- reading Stripe ----------------------------------------------------------------------

    def _pages(self, filters: dict[str, Any], report: ReconcileReport
               ) -> Iterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {"limit": PAGE, **filters}
        if self.types:
            params["types"] = self.types
        while True:
            listing = self._list(params, report)
            page = [event.to_dict() for event in listing.data]
            report.listed += len(page)
            yield page
            if not listing.has_more or not page:
                return
            params["starting_after"] = page[-1]["id"]

    def _list(self, params: dict[str, Any], report: ReconcileReport) -> Any:
        options: stripe.RequestOptions = {"stripe_account": self.account} if self.account else {}
        typed = cast("stripe.params.EventListParams", params)
        return self.backoff(lambda: self.client.v1.events.list(params=typed, options=options),
                            report)

    def backoff(self, call: Callable[[], Any], report: ReconcileReport) -> Any:
        """``call()``, and again after a 429 (exponential, with jitter, counted in ``report``)
        up to ``max_backoff_tries``: every page of both walks goes through here."""
        for attempt in range(1, self.max_backoff_tries + 1):
            try:
                return call()
            except stripe.RateLimitError:
                report.rate_limited += 1
                if attempt == self.max_backoff_tries:
                    raise
                wait = min(60.0, self.backoff_base * 2 ** (attempt - 1))
                self.sleep(wait / 2 + random.random() * wait / 2)
        raise AssertionError("unreachable")

    def _newest(self) -> int | None:
        """Stripe's now, as far as the list tells (the emulator's clock may run ahead)."""
        page = self._list({"limit": 1}, ReconcileReport(self.name)).data
        return int(page[0].created) if page else None

    # -- storing -----------------------------------------------------------------------------

    def _take(self, page: list[dict[str, Any]], report: ReconcileReport, now: int,
              dry_run: bool) -> None:
        if not page:
            return
        self._check_version(page, report)
        known = {r.id for r in self.inbox.page(EventFilter(ids=tuple(e["id"] for e in page)),
                                               limit=len(page), bodies=False)}
        fresh: list[Delivery] = []
        for event in page:
            if event["id"] in known:
                report.known += 1
            elif (event["created"] < now - SAFE_WINDOW and not event.get("pending_webhooks")
                  and not self.include_delivered):
                report.skipped_delivered += 1
            else:
                fresh.append(parse_delivery(orjson.dumps(event)))
        self.store(fresh, report, dry_run)

    def store(self, fresh: list[Delivery], report: ReconcileReport, dry_run: bool) -> None:
        """Put what a walk found into the inbox and count it in ``report`` and in ``stats``
        (a dry run only counts): every page of both walks ends here."""
        if not fresh:
            return
        if dry_run:
            report.reconciled += len(fresh)
            report.found.extend(d.id for d in fresh)
            return
        stored = self.inbox.accept(fresh)
        new = [d.id for d, ok in zip(fresh, stored) if ok]
        report.known += len(fresh) - len(new)  # a webhook got there first
        report.reconciled += len(new)
        report.found.extend(new)
        if new:
            with self.database.transaction() as tx:
                count(tx, "reconciled", len(new))

    def _check_version(self, page: list[dict[str, Any]], report: ReconcileReport) -> None:
        versions = {e.get("api_version") for e in page} - {None}
        received = self._received_version()
        for version in versions:
            if received and version != received:
                self._warn(report, f"the Events API gives api_version {version} but the endpoint"
                           f" receives {received}: reconciled payloads have {version}'s shape,"
                           " which handlers written for the endpoint's may misread")

    def _received_version(self) -> str | None:
        """The version of the event stored last before this run: what the endpoint receives,
        unless an earlier reconcile stored it (then this compares with the Events API itself)."""
        if not hasattr(self, "_received"):
            newest = self.inbox.list(limit=1)
            self._received = (orjson.loads(newest[0].body).get("api_version")
                              if newest else None)
        return self._received

    # -- the cursor --------------------------------------------------------------------------

    def _load(self, name: str | None = None) -> dict[str, Any]:
        with self.database.reading() as tx:
            row = tx.execute("SELECT created, walk_upper, walk_lower, walk_reached FROM"
                             " ichido_reconcile_cursors WHERE account = ?",
                             (name or self.name,)).fetchone()
        names = ("created", "walk_upper", "walk_lower", "walk_reached")
        return dict(zip(names, row)) if row else dict.fromkeys(names)

    def _save(self, *, created: int | None, walk: tuple[int, int, int] | None,
              name: str | None = None) -> None:
        upper, lower, reached = walk or (None, None, None)
        with self.database.transaction() as tx:
            tx.execute(
                "INSERT INTO ichido_reconcile_cursors (account, created, walk_upper, walk_lower,"
                " walk_reached, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account)"
                " DO UPDATE SET created = excluded.created, walk_upper = excluded.walk_upper,"
                " walk_lower = excluded.walk_lower, walk_reached = excluded.walk_reached,"
                " updated_at = excluded.updated_at",
                (name or self.name, created, upper, lower, reached, time.time()))
