"""The processes a benchmark runs: ``ichido serve``/``worker`` as a user runs them, and the
comparison servers (``python -m bench NAME --port P``) under the same uvicorn settings; both
through ``ichido.testing.IchidoProcess``. Plus what a benchmark reads of a process: its CPU."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ichido.testing import IchidoProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _env(env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}


def ichido_cli(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([PY, "-m", "ichido", *args], env=_env(env), capture_output=True,
                          text=True, timeout=120, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(f"ichido {' '.join(args)} failed: {done.stdout}{done.stderr}")


def serve_ichido(store: Any, *, workers: int = 0, app: str | None = None,
                 extra_env: dict[str, str] | None = None) -> IchidoProcess:
    """``ichido serve`` exactly as a user runs it (uvicorn, httptools, uvloop, one process),
    started and healthy."""
    return IchidoProcess.serve(app=app, workers=workers, cwd=tempfile.gettempdir(),
                               env=_env({**store.env, **(extra_env or {})})).start(30)


def start_worker(store: Any, *, app: str, concurrency: int = 1) -> IchidoProcess:
    """``ichido worker``, launched (``wait_ready`` waits for its start-up line)."""
    return IchidoProcess.worker(app=app, concurrency=concurrency, name="worker",
                                cwd=tempfile.gettempdir(), env=_env(store.env)).launch()


def serve_module(name: str, *extra: str, env: dict[str, str] | None = None) -> IchidoProcess:
    """``python -m bench NAME [EXTRA] --port P`` for the comparison servers (bare, baseline,
    peers): they call :func:`serve_asgi`, the same uvicorn settings as ``ichido serve``."""
    port = free_port()
    return IchidoProcess([name, *extra, "--port", str(port)], module="bench", port=port,
                         ready_path="/", name=name, cwd=tempfile.gettempdir(),
                         env=_env(env)).start(30)


def serve_asgi(app: Any, port: int) -> None:
    """uvicorn exactly as ``ichido serve`` configures it (see src/ichido/cli.py)."""
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                http="httptools", loop="uvloop")


async def answer_lifespan(receive: Any, send: Any) -> None:
    """The ASGI lifespan protocol for the comparison apps, which have nothing to start."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def server_port_arg(name: str, argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog=f"python -m bench {name}",
                                description=f"serve the {name} comparison app (not a benchmark)")
    p.add_argument("--port", type=int, required=True)
    return p.parse_args(argv).port
