"""The reconciler's v2 walk: thin events Stripe lists (``GET /v2/core/events``) that the inbox
never got go into the same inbox, as the notifications Stripe would have pushed.

For an account that sends thin events (it has a thin event destination, or the operator says
so), after the v1 passes. The walk pages newest first with the SDK's
``client.v2.core.events.list`` and then each answer's ``next_page_url`` (a v2 list has no
``starting_after``), within ``created`` from the v2 cursor minus the overlap up to Stripe's now.
It keeps its own cursor row (``<account>:v2`` in ``ichido_reconcile_cursors``), saved after
every page as the v1 walk's is, so a crash resumes where it stopped; a dry run saves nothing.

What is stored is the notification (``id``, ``type``, ``created``, ``context``,
``related_object``, ``snapshot_event``…, no ``data``): the same body a thin destination
receives, which the worker completes with its fetch stage. A v2 event says nothing of its
deliveries (no ``pending_webhooks``), so one older than the prune-safe 72 hours and missing is
taken only with ``include_delivered``.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import orjson
import stripe

from ichido.event import Delivery, parse_delivery
from ichido.inbox.base import EventFilter
from ichido.thin.notification import created_seconds

from ichido.recovery.report import SAFE_WINDOW, ReconcileReport

if TYPE_CHECKING:
    from ichido.db.base import Database
    from ichido.inbox.seams import ReconcileStore


class Walker(Protocol):
    """What the walk takes from the reconciler that runs it: its store, client, options and
    cursor rows (``Reconciler``; a Protocol, so the walk never imports the reconciler)."""

    @property
    def inbox(self) -> "ReconcileStore": ...
    @property
    def database(self) -> "Database": ...
    @property
    def client(self) -> stripe.StripeClient: ...
    @property
    def name(self) -> str: ...
    @property
    def account(self) -> str | None: ...
    @property
    def types(self) -> list[str]: ...
    @property
    def overlap(self) -> int: ...
    @property
    def first_lookback(self) -> int: ...
    @property
    def include_delivered(self) -> bool: ...

    def backoff(self, call: Callable[[], Any], report: ReconcileReport) -> Any: ...

    def store(self, fresh: list[Delivery], report: ReconcileReport, dry_run: bool) -> None: ...

    def _load(self, name: str | None = None) -> dict[str, Any]: ...

    def _save(self, *, created: int | None, walk: tuple[int, int, int] | None,
              name: str | None = None) -> None: ...


PAGE = 100  # the v2 list's largest page
NOTIFIED = ("id", "object", "type", "created", "livemode", "context", "reason",
            "related_object", "snapshot_event")  # what a thin destination is sent


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def uses_thin(client: stripe.StripeClient, account: str | None) -> bool:
    """Whether the account has a thin event destination (enabled or not: events made while one
    was disabled are what the walk is for)."""
    options: dict[str, Any] = {"stripe_context": account} if account else {}
    listing: Any = client.v2.core.event_destinations.list(options=options)  # type: ignore[arg-type]  # a plain dict of the SDK's options
    while True:
        if any(getattr(d, "event_payload", None) == "thin" for d in listing.data):
            return True
        url = getattr(listing, "next_page_url", None)
        if not url:
            return False
        listing = client.deserialize(client.raw_request("get", url, **options), api_mode="V2")


class ThinWalk:
    """One v2 walk for ``reconciler``'s account, counted into its report."""

    def __init__(self, reconciler: Walker) -> None:
        self.r = reconciler
        self.name = f"{reconciler.name}:v2"
        self.options: dict[str, Any] = ({"stripe_context": reconciler.account}
                                        if reconciler.account else {})

    def run(self, report: ReconcileReport, *, since: int | None, dry_run: bool) -> None:
        r = self.r
        state = r._load(self.name)
        newest = self._page({"limit": 1}, report)[0]
        now = created_seconds(newest[0]["created"]) if newest else None
        if now is None:
            return
        if state["walk_upper"] is not None and since is None:
            lower, upper, reached = state["walk_lower"], state["walk_upper"], state["walk_reached"]
        else:
            lower = since if since is not None else (
                state["created"] - r.overlap if state["created"] is not None
                else now - r.first_lookback)
            upper, reached = now, now
        if not dry_run:
            r._save(created=state["created"], walk=(upper, lower, reached), name=self.name)
        params = {"limit": PAGE, "created": {"gte": rfc3339(lower), "lt": rfc3339(reached + 1)}}
        for page in self._pages(params, report):
            self._take(page, report, now, dry_run)
            if not dry_run and page:
                low = min(created_seconds(e["created"]) for e in page)
                r._save(created=state["created"], walk=(upper, lower, low), name=self.name)
        if not dry_run:
            r._save(created=max(upper, state["created"] or upper), walk=None, name=self.name)

    # -- reading ---------------------------------------------------------------------------------

    def _pages(self, params: dict[str, Any], report: ReconcileReport
               ) -> Iterator[list[dict[str, Any]]]:
        page, url = self._page(params, report)
        while True:
            report.listed += len(page)
            yield page
            if not url or not page:
                return
            page, url = self._page(url, report)

    def _page(self, ask: dict[str, Any] | str, report: ReconcileReport
              ) -> tuple[list[dict[str, Any]], str | None]:
        """One page: the first by the SDK's list, the next ones by ``next_page_url``."""
        client = self.r.client

        def first(params: dict[str, Any]) -> Callable[[], Any]:
            return lambda: client.v2.core.events.list(
                params=params, options=self.options)  # type: ignore[arg-type]  # the SDK's options

        def more(url: str) -> Callable[[], Any]:
            return lambda: client.deserialize(client.raw_request("get", url, **self.options),
                                              api_mode="V2")

        listing = self.r.backoff(first(ask) if isinstance(ask, dict) else more(ask), report)
        return ([e.to_dict() for e in listing.data],
                getattr(listing, "next_page_url", None) or None)

    # -- storing ---------------------------------------------------------------------------------

    def _wanted(self, event_type: str) -> bool:
        types = self.r.types
        names = (event_type, event_type.removeprefix("v1."))
        return not types or any(fnmatch.fnmatchcase(n, t) for n in names for t in types)

    def _take(self, page: list[dict[str, Any]], report: ReconcileReport, now: int,
              dry_run: bool) -> None:
        page = [e for e in page if self._wanted(str(e.get("type")))]
        if not page:
            return
        known = {x.id for x in self.r.inbox.page(EventFilter(ids=tuple(e["id"] for e in page)),
                                                 limit=len(page), bodies=False)}
        fresh: list[Delivery] = []
        for event in page:
            if event["id"] in known:
                report.known += 1
            elif created_seconds(event["created"]) < now - SAFE_WINDOW and \
                    not self.r.include_delivered:
                report.skipped_delivered += 1
            else:
                fresh.append(parse_delivery(orjson.dumps(
                    {k: event[k] for k in NOTIFIED if k in event})))
        self.r.store(fresh, report, dry_run)
