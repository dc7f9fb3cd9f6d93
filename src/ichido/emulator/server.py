"""Serving the emulator on loopback: in a background thread (tests, the demo) or in the
foreground (``ichido emulator``). Each server has its own event loop, so a test can run the
emulator and a receiver side by side in one process.
"""

from __future__ import annotations

import uvicorn

from ichido.emulator.app import build_app
from ichido.emulator.emulator import Emulator
from ichido.serving import ThreadedServer

HOST = "127.0.0.1"


class EmulatorServer(ThreadedServer):
    """``with EmulatorServer(Emulator(...)) as server: stripe.api_base = server.url``.

    ``port=0`` picks a free port; ``url`` is known once ``start()`` returns, and the emulator
    learns it then (hosted voucher pages link back to it).
    """

    def __init__(self, emulator: Emulator, *, port: int = 0, host: str = HOST,
                 log_level: str = "warning") -> None:
        super().__init__(build_app(emulator), port=port, host=host, log_level=log_level)
        self.emulator = emulator

    def start(self, timeout: float = 10.0) -> "EmulatorServer":
        super().start(timeout)
        self.emulator.store.public_url = self.url
        return self


def run(emulator: Emulator, *, port: int = 12111, host: str = HOST,
        log_level: str = "warning") -> None:
    """Serve in the foreground until interrupted."""
    emulator.store.public_url = f"http://{host}:{port}"
    uvicorn.run(build_app(emulator), host=host, port=port, log_level=log_level, lifespan="on",
                access_log=False)
