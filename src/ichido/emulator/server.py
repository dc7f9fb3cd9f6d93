"""Serving the emulator on loopback: in a background thread (tests, the demo) or in the
foreground (``ichido emulator``). Each server has its own event loop, so a test can run the
emulator and a receiver side by side in one process. The thread wrapper is the emulator's own:
it shares no code with ichido's receiver beyond the signature helper.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn

from ichido.emulator.app import build_app
from ichido.emulator.emulator import Emulator

HOST = "127.0.0.1"


class EmulatorServer:
    """``with EmulatorServer(Emulator(...)) as server: stripe.api_base = server.url``.

    ``port=0`` picks a free port; ``url`` is known once ``start()`` returns, and the emulator
    learns it then (hosted voucher pages link back to it).
    """

    def __init__(self, emulator: Emulator, *, port: int = 0, host: str = HOST,
                 log_level: str = "warning") -> None:
        self.emulator = emulator
        self._server = uvicorn.Server(uvicorn.Config(
            build_app(emulator), host=host, port=port, log_level=log_level, lifespan="on",
            access_log=False))
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, timeout: float = 15.0) -> "EmulatorServer":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()),
                                        name="ichido-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start (is the port free?)")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.emulator.store.public_url = self.url
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run(emulator: Emulator, *, port: int = 12111, host: str = HOST,
        log_level: str = "warning") -> None:
    """Serve in the foreground until interrupted."""
    emulator.store.public_url = f"http://{host}:{port}"
    uvicorn.run(build_app(emulator), host=host, port=port, log_level=log_level, lifespan="on",
                access_log=False)
