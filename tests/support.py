"""Helpers shared by the tests: events, signatures, and an `ichido serve` subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import httpx
import orjson

from ichido import signature

SECRET = "whsec_test_0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


def make_event(type: str = "payment_intent.succeeded", *, id: str | None = None,
               object_id: str | None = None, created: int | None = None,
               obj: dict[str, Any] | None = None, **extra: Any) -> bytes:
    """A Stripe-shaped event body (about the size of a real one when ``obj`` is given)."""
    event_id = id or f"evt_{uuid.uuid4().hex[:24]}"
    data_object = obj if obj is not None else {"id": object_id or f"pi_{uuid.uuid4().hex[:24]}",
                                               "object": type.split(".")[0]}
    doc = {"id": event_id, "object": "event", "api_version": "2026-10-28.endive",
           "created": int(time.time()) if created is None else created,
           "data": {"object": data_object}, "livemode": False, "pending_webhooks": 1,
           "request": {"id": None, "idempotency_key": None}, "type": type, **extra}
    return orjson.dumps(doc)


def signed_headers(body: bytes, secrets: Sequence[str] = (SECRET,),
                   timestamp: int | None = None) -> dict[str, str]:
    return {"Stripe-Signature": signature.sign(body, secrets, timestamp),
            "Content-Type": "application/json; charset=utf-8"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`ichido serve` in a real subprocess, for crash and concurrency tests."""

    def __init__(self, database_url: str, *, app: str | None = "tests.apps.effects:app",
                 workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "ichido", "serve", "--port", str(self.port),
                "--workers", str(workers)]
        if app:
            args += ["--app", app]
        full_env = {**os.environ, "ICHIDO_DATABASE_URL": database_url,
                    "STRIPE_WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT),
                    "ICHIDO_POLL_INTERVAL": "0.05", **(env or {})}
        if app:  # the app's own tables, as a deployment would run `ichido migrate` first
            subprocess.run([sys.executable, "-m", "ichido", "migrate", "--app", app], cwd=ROOT,
                           env=full_env, check=True, capture_output=True)
        self.proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ichido serve exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("ichido serve did not become healthy in time")

    def post(self, body: bytes, client: httpx.Client | None = None, **kwargs: Any) -> httpx.Response:
        sender = client or httpx
        return sender.post(f"{self.url}/webhooks/stripe", content=body,
                           headers=signed_headers(body), **kwargs)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing: what a crash looks like."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: the graceful path."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        if self.proc.stdout is None or self.proc.poll() is None:
            return ""
        return self.proc.stdout.read().decode(errors="replace")
