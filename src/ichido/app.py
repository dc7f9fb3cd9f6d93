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
from ichido.errors import StorageUnavailable
from ichido.group_commit import GroupCommit
from ichido.handlers import Handler, HandlerRegistry
from ichido.inbox import Inbox, SeenCache, open_inbox, open_seen_cache
from ichido.inbox.migrations import Step
from ichido.metrics import METRICS
from ichido.receiver import WebhookReceiver
from ichido.worker import Worker

log = logging.getLogger("ichido")


class App:
    """One ichido service. Configuration comes from the environment unless ``settings`` is given.

    ``workers`` is how many worker threads the app runs while it is being served (``ichido
    serve --workers N`` sets it; 0 leaves processing to ``ichido worker`` processes).
    ``schema`` holds the app's own versioned tables, ``(component, version, [statements])``,
    migrated with ichido's (automatically on SQLite, by ``ichido migrate --app`` elsewhere).
    """

    def __init__(self, settings: Settings | None = None, *, workers: int = 1,
                 routes: Sequence[BaseRoute] = (), schema: Sequence[Step] = (),
                 **overrides: Any) -> None:
        self.settings = settings or Settings.from_env(**overrides)
        self.schema = list(schema)
        self.fee_report: Callable[[], Any] | None = None  # fee rows per method, for the dashboard
        self.handlers = HandlerRegistry()
        self.workers = workers
        self._routes = list(routes)
        self._inbox: Inbox | None = None
        self._inbox_lock = threading.Lock()
        self._seen: SeenCache | None = None
        self._group: GroupCommit | None = None
        self._start_lock: asyncio.Lock | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.background: list[Callable[[threading.Event], None]] = []
        self.receiver = WebhookReceiver(self.settings, self._group_commit)
        self._asgi: Starlette | None = None
        self._dashboard = dashboard_routes(self)  # /dashboard, when ICHIDO_DASHBOARD_TOKEN is set

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

    @property
    def inbox(self) -> Inbox:
        with self._inbox_lock:
            if self._inbox is None:
                self._inbox = open_inbox(self.settings, steps=self.schema)
            return self._inbox

    @property
    def seen(self) -> SeenCache:
        """The fast seen tier (a hint: clearing it loses nothing, I3)."""
        if self._seen is None:
            self._seen = open_seen_cache(self.settings, self.inbox.store_id())
        return self._seen

    def migrate(self) -> None:
        """Apply ichido's and this app's pending schema steps (what ``ichido migrate`` does)."""
        open_inbox(self.settings, migrate=True, steps=self.schema).close()

    def worker(self, name: str | None = None) -> Worker:
        return Worker(self.inbox, self.handlers, self.settings, name=name, wake=self._wake)

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
        """Start the receiver's store and the worker threads; stop them cleanly.

        Pass it to a host app (``FastAPI(lifespan=ichido_app.lifespan)``) to get workers there.
        """
        await self._group_commit()
        self.start_workers(self.workers)
        try:
            yield
        finally:
            await self.shutdown()

    def start_workers(self, count: int) -> None:
        """Start ``count`` worker threads and, with them, the app's background loops (such as
        the outbox dispatcher): whoever processes events also sends their effects."""
        name = f"{socket.gethostname()}:{os.getpid()}"
        loops = [self.worker(name=f"{name}:w{index}").run for index in range(count)]
        if count:
            loops += self.background
        for index, loop in enumerate(loops):
            thread = threading.Thread(target=loop, args=(self._stop,), daemon=True,
                                      name=f"ichido-{getattr(loop, '__qualname__', 'loop')}-{index}")
            thread.start()
            self._threads.append(thread)

    async def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._group is not None:
            await self._group.close()
            self._group = None
        if self._seen is not None:
            self._seen.close()
            self._seen = None
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 30)
        self._threads.clear()
        self._stop.clear()
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None

    # -- internals ---------------------------------------------------------------------------

    async def _group_commit(self) -> GroupCommit:
        """The receiver's store, started on first use (a host app may never run our lifespan)."""
        if self._group is None:
            if self._start_lock is None:
                self._start_lock = asyncio.Lock()
            async with self._start_lock:
                if self._group is None:
                    self.settings.require_secret()
                    seen = await asyncio.to_thread(lambda: self.seen)  # opens the store too
                    self._group = GroupCommit(
                        self.inbox, seen, on_stored=self._wake.set,
                        shutdown_timeout=self.settings.shutdown_timeout_seconds)
        return self._group

    async def _healthz(self, _request: Request) -> Response:
        try:
            await asyncio.to_thread(self.inbox.ping)
        except StorageUnavailable as exc:
            return JSONResponse({"status": "unavailable", "storage": exc.message}, status_code=503)
        return JSONResponse({"status": "ok", "storage": "ok"})

    async def _metrics(self, _request: Request) -> Response:
        return Response(generate_latest(METRICS.registry), media_type=CONTENT_TYPE_LATEST)
