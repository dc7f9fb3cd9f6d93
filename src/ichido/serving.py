"""Serve an ASGI app with uvicorn on loopback in a background thread (the demo, tests)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn


class ThreadedServer:
    """``with ThreadedServer(app) as server: httpx.get(server.url)``; ``port=0`` picks one."""

    def __init__(self, app: Any, *, port: int = 0, host: str = "127.0.0.1",
                 log_level: str = "warning") -> None:
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                     log_level=log_level, lifespan="on",
                                                     access_log=False))
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, timeout: float = 15.0) -> "ThreadedServer":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()),
                                        name="ichido-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (is the port free?)")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
