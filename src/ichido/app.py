"""``ichido.App``: settings, handlers, the receiver and in-process workers, wired together.

An ``App`` is an ASGI application: serve it with ``ichido serve --app module:app`` (or any ASGI
server), or mount it in an existing Starlette/FastAPI app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from typing import Any, AsyncIterator, Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ichido.config import Settings
from ichido.dashboard.mount import routes as dashboard_routes
from ichido.dashboard.panels import Panels
from ichido.db import Database, Step, open_database
from ichido.errors import StorageUnavailable
from ichido.group_commit import GroupCommit
from ichido.handlers import Handler, HandlerRegistry
from ichido.health import Health
from ichido.inbox import Inbox, open_inbox
from ichido.metrics import METRICS
from ichido.queue import Queue, open_queue
from ichido.receiver import WebhookReceiver
from ichido.seen import SeenCache, open_seen
from ichido.worker import Worker

log = logging.getLogger("ichido")


class App:
    """One ichido service. Configuration comes from the environment unless ``settings`` is given.

    ``workers`` is how many worker threads the app runs while it is being served (``ichido
    serve --workers N`` sets it; 0 leaves processing to ``ichido worker`` processes).
    ``schema`` holds the app's own versioned tables, ``(component, version, [statements])``,
    migrated with ichido's (automatically on SQLite, by ``ichido migrate --app`` elsewhere).

    The stores (``database``, ``inbox``, ``queue``, ``seen``) are opened from the settings by
    ``start()``, except those given here, which stay their caller's to close. Building an app
    opens nothing: ``ichido migrate`` must be able to load an app whose schema is behind.
    """

    def __init__(self, settings: Settings | None = None, *, database: Database | None = None,
                 inbox: Inbox | None = None, queue: Queue | None = None,
                 seen: SeenCache | None = None, workers: int = 1,
                 routes: Sequence[BaseRoute] = (), schema: Sequence[Step] = (),
                 **overrides: Any) -> None:
        self.settings = settings or Settings.from_env(**overrides)
        self.schema = list(schema)
        self.dashboard = Panels()  # the application's own tabs on the operator page
        self.handlers = HandlerRegistry()
        self.workers = workers
        self._routes = list(routes)
        self._stores = _Stores(database, inbox, queue, seen)
        self._owned: list[Any] = []  # what start() opened, closed by close() in reverse
        self._is_started = False
        self._start_lock = threading.Lock()
        self._group: GroupCommit | None = None
        self._group_lock: asyncio.Lock | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.background: list[Callable[[threading.Event], None]] = []
        self.receiver = WebhookReceiver(self.settings, self._group_commit)
        self._asgi: Starlette | None = None
        self._dashboard = dashboard_routes(self)  # /dashboard, when ICHIDO_DASHBOARD_TOKEN is set
        self._health = Health()

    # -- for users ---------------------------------------------------------------------------

    def on(self, *event_types: str, latest_only: bool = False,
           refetch: Any = None) -> Callable[[Handler], Handler]:
        """Register a handler: ``@app.on("payment_intent.succeeded") def paid(event, tx): ...``

        ``latest_only=True``: skip events older than what was applied to their object
        (``ichido.recovery.guard``); ``refetch=``: see ``HandlerRegistry.on``."""
        return self.handlers.on(*event_types, latest_only=latest_only, refetch=refetch)

    def add_routes(self, routes: Sequence[BaseRoute]) -> None:
        if self._asgi is not None:
            raise RuntimeError("add routes before the app serves its first request")
        self._routes.extend(routes)

    @property
    def routes(self) -> list[BaseRoute]:
        """The receiver's routes, for ``Starlette(routes=[*ichido_app.routes, ...])``."""
        return [
            Route("/webhooks/stripe", self.receiver, methods=["POST"]),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            *self._dashboard,
            *self._routes,
        ]

    # -- the stores: opened once, by start() ----------------------------------------------

    @property
    def started(self) -> bool:
        return self._is_started

    def start(self) -> None:
        """Open every store not given to the app, and bring the schema up to date (on SQLite;
        elsewhere check it). Idempotent; ``close()`` closes what this opened."""
        with self._start_lock:
            if self.started:
                return
            stores, owned = self._stores, list[Any]()  # each has close()
            try:
                if stores.database is None:
                    stores.database = open_database(self.settings)
                    owned.append(stores.database)
                if stores.inbox is None:
                    stores.inbox = open_inbox(self.settings, stores.database)
                    owned.append(stores.inbox)
                stores.database.prepare(self.schema)
                if stores.queue is None:
                    stores.queue = open_queue(self.settings, stores.inbox)
                    owned.append(stores.queue)
                seen = stores.seen or open_seen(self.settings, stores.inbox.seen_namespace())
                if stores.seen is None:
                    owned.append(seen)
            except BaseException:
                _close_all(owned)
                self._stores = _Stores(*(None if s in owned else s for s in stores))
                raise
            self._owned = owned
            stores.seen = seen
            self._is_started = True

    def close(self) -> None:
        """Close what ``start()`` opened (a store given to the app is its caller's)."""
        with self._start_lock:
            owned, self._owned = self._owned, []
            self._is_started = False
            _close_all(owned)
            self._stores = _Stores(*(None if s in owned else s for s in self._stores))

    @property
    def database(self) -> Database:
        """Where handlers write and domain state lives (``ichido.Transaction``)."""
        return self._started(self._stores.database)

    @property
    def inbox(self) -> Inbox:
        return self._started(self._stores.inbox)

    @property
    def queue(self) -> Queue:
        return self._started(self._stores.queue)

    @property
    def seen(self) -> SeenCache:
        """The fast seen tier (a hint: clearing it loses nothing, I3)."""
        return self._started(self._stores.seen)

    def _started(self, store: Any) -> Any:
        if not self.started:
            raise RuntimeError("the app is not started: call app.start() (serving does)")
        return store

    def migrate(self) -> None:
        """Apply ichido's and this app's pending schema steps (what ``ichido migrate`` does)."""
        database = self._stores.database or open_database(self.settings, migrate=True)
        try:
            open_inbox(self.settings, database, migrate=True).close()
            database.prepare(self.schema, migrate=True)
        finally:
            if database is not self._stores.database:
                database.close()

    def worker(self, name: str | None = None) -> Worker:
        """A worker on this app's queue (starting the app if nobody did)."""
        self.start()
        # a TableQueue: the worker needs processing(), which is not on Queue
        return Worker(self.queue,  # type: ignore[arg-type]  # see above
                      self.handlers, self.settings, name=name, wake=self._wake)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        # The hot path skips the router: it is the one route that must answer in microseconds.
        if scope.get("path") == "/webhooks/stripe" and scope.get("method") == "POST":
            await self.receiver(scope, receive, send)
            return
        if self._asgi is None:
            self._asgi = Starlette(routes=self.routes, lifespan=self.lifespan)
        await self._asgi(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        """Start the stores (unless started already), the receiver and the worker threads;
        stop them cleanly, and close the stores if this started them.

        Pass it to a host app (``FastAPI(lifespan=ichido_app.lifespan)``) to get workers there.
        """
        opened = not self.started
        await asyncio.to_thread(self.start)
        await self._group_commit()
        self.start_workers(self.workers)
        try:
            yield
        finally:
            await self.shutdown()
            if opened:
                await asyncio.to_thread(self.close)

    def start_workers(self, count: int) -> None:
        """Start ``count`` worker threads and, with them, the app's background loops (such as
        the outbox dispatcher): whoever processes events also sends their effects."""
        name = f"{socket.gethostname()}:{os.getpid()}"
        loops: list[Callable[[threading.Event], None]] = [
            self.worker(name=f"{name}:w{index}").run for index in range(count)]
        if count:
            loops += self.background
        for index, loop in enumerate(loops):
            thread = threading.Thread(target=loop, args=(self._stop,), daemon=True,
                                      name=f"ichido-{getattr(loop, '__qualname__', 'loop')}-{index}")
            thread.start()
            self._threads.append(thread)

    async def shutdown(self) -> None:
        """Stop the receiver's batching and the worker threads; the stores stay open."""
        self._stop.set()
        self._wake.set()
        if self._group is not None:
            await self._group.close()
            self._group = None
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 30)
        self._threads.clear()
        self._stop.clear()

    # -- internals ---------------------------------------------------------------------------

    async def _group_commit(self) -> GroupCommit:
        """The receiver's batching, started on first use (a host app may never run our
        lifespan); the stores are started then too, if nobody did."""
        if self._group is None:
            if self._group_lock is None:
                self._group_lock = asyncio.Lock()
            async with self._group_lock:
                if self._group is None:
                    self.settings.require_secret()
                    await asyncio.to_thread(self.start)
                    self._group = GroupCommit(
                        self.inbox, self.seen, on_stored=self._wake.set,
                        shutdown_timeout=self.settings.shutdown_timeout_seconds)
        return self._group

    async def _healthz(self, _request: Request) -> Response:
        """Whether a delivery can be stored now: the last delivery's outcome, and a write
        probe of what the receiver writes (at most one per second, the others share it)."""
        try:
            await asyncio.to_thread(self.start)
            await self._health.check(self.inbox, self._group)
        except StorageUnavailable as exc:
            return JSONResponse({"status": "unavailable", "storage": exc.message}, status_code=503)
        return JSONResponse({"status": "ok", "storage": "ok"})

    async def _metrics(self, _request: Request) -> Response:
        return Response(generate_latest(METRICS.registry), media_type=CONTENT_TYPE_LATEST)


class _Stores:
    """The four roles an app runs on; None until opened or given."""

    def __init__(self, database: Database | None, inbox: Inbox | None, queue: Queue | None,
                 seen: SeenCache | None) -> None:
        self.database, self.inbox, self.queue, self.seen = database, inbox, queue, seen

    def __iter__(self) -> Any:
        return iter((self.database, self.inbox, self.queue, self.seen))


def _close_all(stores: Sequence[Any]) -> None:
    """Close in reverse order of opening: what was built on a store goes before it."""
    for store in reversed(stores):
        store.close()
