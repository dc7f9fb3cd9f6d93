"""ichido inside an existing app: mounted in Starlette or FastAPI, over real HTTP."""

from __future__ import annotations

import time
from typing import Callable

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import ichido
from ichido.config import Settings
from ichido.serving import ThreadedServer
from tests.support import make_event, signed_headers


def service(settings: Settings) -> tuple[ichido.App, list[str]]:
    app = ichido.App(settings)
    seen: list[str] = []

    @app.on("payment_intent.succeeded")
    def paid(event: ichido.Event, tx) -> None:
        seen.append(event.id)

    return app, seen


def wait_until(check: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def host_page(_request) -> PlainTextResponse:
    return PlainTextResponse("the host app still answers")


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_mounted_receiver_accepts_and_the_host_lifespan_runs_workers(
        settings: Settings, framework: str) -> None:
    app, handled = service(settings)
    if framework == "starlette":
        host = Starlette(routes=[Route("/", host_page), Mount("/stripe", app=app)],
                         lifespan=app.lifespan)
    else:
        host = FastAPI(lifespan=app.lifespan)
        host.add_api_route("/", lambda: "the host app still answers")
        host.mount("/stripe", app)
    body = make_event()
    with ThreadedServer(host) as server:
        first = httpx.post(f"{server.url}/stripe/webhooks/stripe", content=body,
                           headers=signed_headers(body))
        again = httpx.post(f"{server.url}/stripe/webhooks/stripe", content=body,
                           headers=signed_headers(body))
        assert "still answers" in httpx.get(f"{server.url}/").text
        assert wait_until(lambda: len(handled) == 1)
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    assert again.json()["status"] == "duplicate"
    assert handled == [first.json()["id"]]


def test_mounted_without_our_lifespan_stores_and_a_separate_worker_processes(
        settings: Settings) -> None:
    app, handled = service(settings)
    host = Starlette(routes=[Mount("/stripe", app=app)])  # no lifespan: receiver starts lazily
    body = make_event()
    with ThreadedServer(host) as server:
        answer = httpx.post(f"{server.url}/stripe/webhooks/stripe", content=body,
                            headers=signed_headers(body))
    assert answer.json()["status"] == "accepted"
    assert handled == []  # nobody processed it in the host process
    worker_app, worker_handled = service(settings)
    assert worker_app.worker().drain() == 1
    assert worker_handled == [answer.json()["id"]]
