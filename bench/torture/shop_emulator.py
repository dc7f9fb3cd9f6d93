"""The local Stripe of the shop torture, in a process of its own (it is the busiest piece:
every delivery is an HTTP request it makes), with a few read-outs for the run under
``/_torture/``: what is in flight, fire what is due, find a refund, dump everything."""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import orjson

from bench.torture.services import ROOT
from bench.torture.shop_plan import API_KEY


class EmulatorProcess:
    """The local Stripe in a process of its own (it is the busiest piece: every delivery is an
    HTTP request it makes), with a few read-outs for this run under ``/_torture/``."""

    def __init__(self, args: argparse.Namespace, port: int, webhook_urls: list[str],
                 secret: str, logdir: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "bench", "shop-torture", "--emulator-child",
                   "--port", str(port), "--secret", secret,
                   "--duplicate-rate", str(args.duplicate_rate),
                   "--reorder-window", str(args.reorder_window), "--seed", str(args.seed),
                   "--sender-concurrency", str(args.sender_concurrency)]
        for url in webhook_urls:
            command += ["--webhook-url", url]
        self.log = open(logdir / "emulator.log", "ab")
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.client = httpx.Client(base_url=self.url, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.status()
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the emulator did not start; see {self.log.name}")
                time.sleep(0.1)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Every read-out is safe to repeat: a reset keep-alive connection is tried again."""
        for attempt in range(20):
            try:
                response = self.client.request(method, path, **kwargs)
                response.raise_for_status()
                return response.json()
            except httpx.HTTPError:
                if attempt == 19 or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/_torture/status")

    def fire_due(self) -> dict[str, Any]:
        return self.request("POST", "/_torture/fire")

    def refund(self, request_id: str) -> tuple[str, str] | None:
        found = self.request("GET", "/_torture/refund", params={"request": request_id})
        return (found["id"], found["status"]) if found else None

    def dump(self, path: Path) -> dict[str, Any]:
        self.request("POST", "/_torture/dump", params={"path": str(path)})
        return orjson.loads(path.read_bytes())

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def serve_emulator(argv: list[str]) -> int:
    """``--emulator-child``: run the emulator with the run's read-outs (see EmulatorProcess)."""
    import uvicorn

    from ichido.emulator import Emulator
    from ichido.emulator.app import build_app

    parser = argparse.ArgumentParser()
    parser.add_argument("--emulator-child", action="store_true")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", action="append", default=[])
    parser.add_argument("--secret", required=True)
    parser.add_argument("--duplicate-rate", type=float, default=0.3)
    parser.add_argument("--reorder-window", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--sender-concurrency", type=int, default=48)
    args = parser.parse_args(argv)
    emu = Emulator(webhook_urls=args.webhook_url, webhook_secrets=[args.secret], api_key=API_KEY,
                   duplicate_rate=args.duplicate_rate, reorder_window=args.reorder_window,
                   time_scale=0.001, seed=args.seed,
                   webhook_concurrency=max(1, args.sender_concurrency))
    emu.store.public_url = f"http://127.0.0.1:{args.port}"
    inner = build_app(emu)
    store, sender = emu.store, emu.sender

    def answer(path: str, query: dict[str, list[str]]) -> Any:
        if path == "/_torture/status":
            return {"in_flight": len(getattr(sender, "_tasks", ())), "busy": sender.busy(),
                    "events": len(store.objects["event"])}
        if path == "/_torture/fire":
            with store.lock:
                store.fire_due()
            return {"busy": sender.busy()}
        if path == "/_torture/refund":
            wanted = query["request"][0]
            with store.lock:
                for refund in store.objects["refund"].values():
                    if refund["metadata"].get("refund_request") == wanted:
                        return {"id": refund["id"], "status": refund["status"]}
            return None
        if path == "/_torture/dump":
            with store.lock:
                doc = {"events": list(reversed(store.live_events())),
                       "intents": [[pi["id"], pi["metadata"].get("order_id")]
                                   for pi in store.objects["payment_intent"].values()],
                       "refunds": [[r["id"], r["metadata"].get("refund_request"), r["status"]]
                                   for r in store.objects["refund"].values()]}
            doc["stats"] = emu.stats()
            Path(query["path"][0]).write_bytes(orjson.dumps(doc))
            return {"ok": True}
        return None

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/_torture/"):
            from urllib.parse import parse_qs

            query = parse_qs(scope["query_string"].decode())
            body = orjson.dumps(await asyncio.to_thread(answer, scope["path"], query))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await inner(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on",
                access_log=False)
    return 0
