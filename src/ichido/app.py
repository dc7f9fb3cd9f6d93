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
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Protocol, Sequence, TypeVar, cast

import stripe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ichido.config import Settings
from ichido.dashboard.panels import Panels
from ichido.db import Database, Step, open_database
from ichido.errors import StorageUnavailable
from ichido.group_commit import GroupCommit
from ichido.handlers import Handler, HandlerRegistry
from ichido.health import Health
from ichido.inbox import sql_inbox
from ichido.metrics import METRICS
from ichido.outbox import OutboxDispatcher
from ichido.queue import open_queue
from ichido.queue.base import WorkerQueue
from ichido.receiver import WebhookReceiver
from ichido.schema import open_inbox
from ichido.seen import SeenCache, open_seen
from ichido.db.sql import SqlDatabase
from ichido.thin.fetch import FetchStage
from ichido.thin.reader import Reader
from ichido.recovery.alerts import generation_failure
from ichido.recovery.settings import stripe_client_from_env
from ichido.worker import Worker

if TYPE_CHECKING:
    from ichido.inbox import Inbox
    from ichido.inbox.sql import SqlInbox

log = logging.getLogger("ichido")
T = TypeVar("T")

#: a background loop: runs until the event it is given is set
Loop = Callable[[threading.Event], None]


class Extension(Protocol):
    """What ``App.install`` takes (recovery's ``Recovery``, the dashboard's ``Dashboard``, or
    yours): ``install(app)`` adds its loops, outbox senders and routes through the app's methods."""

    def install(self, app: Any) -> None: ...


E = TypeVar("E", bound=Extension)


class App:
    """One ichido service. Configuration comes from the environment unless ``settings`` is given.

    ``workers`` is how many worker threads the app runs while it is being served (``ichido
    serve --workers N`` sets it; 0 leaves processing to ``ichido worker`` processes).
    ``schema`` holds the app's own versioned tables, ``(component, version, [statements])``,
    migrated with ichido's (automatically on SQLite, by ``ichido migrate --app`` elsewhere).

    The stores (``database``, ``inbox``, ``queue``, ``seen``) are opened from the settings by
    ``start()``, except those given here, which stay their caller's to close. Building an app
    opens nothing: ``ichido migrate`` must be able to load an app whose schema is behind.

    Applications and extensions join it on purpose, through its methods: ``outbox.add_sender``
    (the app's one outbox dispatcher), ``add_loop`` (a background loop), ``add_routes``, and
    ``install`` (recovery, the dashboard: each once).
    """

    def __init__(self, settings: Settings | None = None, *, database: Database | None = None,
                 inbox: SqlInbox | None = None, queue: WorkerQueue | None = None,
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
        self._loops: list[Loop] = []
        # The one dispatcher of this app's outbox table: it must know every kind (applications'
        # and recovery's alerts), so each adds its senders here; it runs once it has one.
        self.outbox = OutboxDispatcher(
            lambda: self.database, {}, lease_seconds=self.settings.lease_seconds,
            max_attempts=self.settings.max_attempts, retry_base=self.settings.retry_base_seconds,
            retry_cap=self.settings.retry_cap_seconds,
            poll_interval=self.settings.poll_interval_seconds)
        self._extensions: dict[type, Extension] = {}
        self.receiver = WebhookReceiver(self.settings, self._group_commit, lambda: self._group)
        self._asgi: Starlette | None = None
        self._health = Health()
        #: this process's reads of Stripe's API for thin events, at ICHIDO_FETCH_RATE
        self.reader = Reader(self.settings.fetch_rate, make_client=stripe_client_from_env)

    # -- for users ---------------------------------------------------------------------------

    def on(self, *event_types: str, latest_only: bool = False,
           refetch: Any = None) -> Callable[[Handler], Handler]:
        """Register a handler: ``@app.on("payment_intent.succeeded") def paid(event, tx): ...``

        ``latest_only=True``: skip events older than what was applied to their object
        (``ichido.guard``); ``refetch=``: see ``HandlerRegistry.on``."""
        return self.handlers.on(*event_types, latest_only=latest_only, refetch=refetch)

    def add_routes(self, routes: Sequence[BaseRoute]) -> None:
        if self._asgi is not None:
            raise RuntimeError("add routes before the app serves its first request")
        self._routes.extend(routes)

    def add_loop(self, loop: Loop) -> None:
        """Run ``loop(stop)`` in a thread of its own wherever this app runs workers (``serve
        --workers N``, ``ichido worker``): whoever processes events also runs the loops."""
        self._loops.append(loop)

    @property
    def loops(self) -> list[Loop]:
        """The background loops: the outbox dispatcher (when it has a sender), then the added."""
        return [*([self.outbox.run] if self.outbox.senders else []), *self._loops]

    def install(self, extension: E) -> E:
        """Install ``extension`` (``Recovery()``, ``Dashboard()``) once per app: one of each
        kind (its class). Installing another of a kind already installed changes nothing and
        returns the one installed first, so a command can install what a host app may have."""
        kind = type(extension)
        if kind in self._extensions:
            return cast(E, self._extensions[kind])
        extension.install(self)
        self._extensions[kind] = extension
        return extension

    @property
    def routes(self) -> list[BaseRoute]:
        """The receiver's routes, for ``Starlette(routes=[*ichido_app.routes, ...])``."""
        return [
            Route("/webhooks/stripe", self.receiver, methods=["POST"]),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
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
                inbox: Inbox | None = stores.inbox
                if inbox is None:
                    inbox = open_inbox(self.settings, stores.database)
                    owned.append(inbox)
                stores.database.prepare(self.schema)
                if stores.queue is None:
                    stores.queue = open_queue(self.settings, inbox)
                    owned.append(stores.queue)
                # the queue is the inbox's table, so the app's inbox is a SQL one
                stores.inbox = sql_inbox(inbox, "an ichido.App")
                seen = stores.seen or open_seen(self.settings, inbox.seen_namespace())
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
    def inbox(self) -> SqlInbox:
        return self._started(self._stores.inbox)

    @property
    def queue(self) -> WorkerQueue:
        return self._started(self._stores.queue)

    @property
    def seen(self) -> SeenCache:
        """The fast seen tier (a hint: clearing it loses nothing, I3)."""
        return self._started(self._stores.seen)

    def _started(self, store: T | None) -> T:
        if not self.started or store is None:
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

    def read_with(self, client: stripe.StripeClient) -> None:
        """Read thin events with ``client`` (the official SDK's) instead of one built from
        ``STRIPE_API_KEY`` and ``STRIPE_API_BASE``; call it before the workers start."""
        self.reader = Reader(self.settings.fetch_rate, client=client)

    def worker(self, name: str | None = None) -> Worker:
        """A worker on this app's queue (starting the app if nobody did)."""
        self.start()
        fetch = None
        if isinstance(self.database, SqlDatabase):  # thin events' fetch stage (ichido.thin)
            fetch = FetchStage(self.database, self.queue, self.handlers, self.settings,
                               self.reader)
        return Worker(self.queue, self.handlers, self.settings, name=name, wake=self._wake,
                      fetch=fetch, alert=generation_failure)

    @property
    def fast_path_receiver(self) -> WebhookReceiver | None:
        """The receiver ``__call__`` hands ``POST /webhooks/stripe`` to, and nothing else
        happens for that route: ``ichido serve`` may run it from the connection instead
        (ichido.serving's fast path). None when a subclass answers requests its own way."""
        return self.receiver if type(self).__call__ is App.__call__ else None

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
        loops: list[Loop] = [self.worker(name=f"{name}:w{index}").run for index in range(count)]
        if count:
            loops += self.loops
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

    def __init__(self, database: Database | None, inbox: SqlInbox | None,
                 queue: WorkerQueue | None, seen: SeenCache | None) -> None:
        self.database, self.inbox, self.queue, self.seen = database, inbox, queue, seen

    def __iter__(self) -> Any:
        return iter((self.database, self.inbox, self.queue, self.seen))


def _close_all(stores: Sequence[Any]) -> None:
    """Close in reverse order of opening: what was built on a store goes before it."""
    for store in reversed(stores):
        store.close()
