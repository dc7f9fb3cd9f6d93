"""Where the page lives: in ``ichido serve``, inside a host app under a prefix, and alone
(``ichido dashboard``) against a store that another process fills."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import ichido
from ichido.config import Settings
from tests.dashboard.conftest import TOKEN, store_events
from tests.support import ROOT, ServerProcess, free_port

def test_the_page_works_inside_a_host_app_under_a_prefix(dashboard_app: ichido.App) -> None:
    host = Starlette(routes=[Mount("/ichido", app=dashboard_app)], lifespan=dashboard_app.lifespan)
    with TestClient(host) as client:
        answer = client.post("/ichido/dashboard/login", data={"token": TOKEN},
                             follow_redirects=False)
        assert answer.headers["location"] == "/ichido/dashboard/"
        assert "Path=/ichido/dashboard" in answer.headers["set-cookie"]
        page = client.get("/ichido/dashboard/").text
        assert 'href="/ichido/dashboard/events"' in page
        assert 'href="/ichido/dashboard/static/dashboard.css"' in page
        assert client.get("/ichido/dashboard/static/dashboard.css").status_code == 200

def test_ichido_serve_serves_the_page_when_a_token_is_set(database_url: str) -> None:
    server = ServerProcess(database_url, env={"ICHIDO_DASHBOARD_TOKEN": TOKEN})
    try:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/dashboard/login").status_code == 200
            client.post("/dashboard/login", data={"token": TOKEN})
            assert 'data-counter="received"' in client.get("/dashboard/").text
    finally:
        server.stop()

def test_ichido_dashboard_alone_reads_a_store_filled_elsewhere(
        dashboard_app: ichido.App, settings: Settings) -> None:
    """The receiver and worker are this test's app; the page is another process."""
    with TestClient(dashboard_app) as client:
        stored = store_events(dashboard_app, client)
    port = free_port()
    env = {**os.environ, "ICHIDO_DATABASE_URL": settings.database_url, "PYTHONPATH": str(ROOT),
           "ICHIDO_DASHBOARD_TOKEN": TOKEN}
    env.pop("STRIPE_WEBHOOK_SECRET", None)  # the page alone needs no webhook secret
    proc = subprocess.Popen([sys.executable, "-m", "ichido", "dashboard", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url) as client:
            ready(client, proc)
            client.post("/dashboard/login", data={"token": TOKEN})
            page = client.get("/dashboard/events", params={"status": "dead"}).text
            assert all(event_id in page for event_id in stored.dead)
            assert client.get("/webhooks/stripe").status_code == 404  # no receiver here
    finally:
        proc.terminate()
        proc.wait(20)

def test_ichido_dashboard_refuses_to_start_without_a_token(settings: Settings) -> None:
    env = {**os.environ, "ICHIDO_DATABASE_URL": settings.database_url, "PYTHONPATH": str(ROOT)}
    env.pop("ICHIDO_DASHBOARD_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "ichido", "dashboard", "--port",
                           str(free_port())], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode == 2 and b"ICHIDO_DASHBOARD_TOKEN" in done.stderr

def ready(client: httpx.Client, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        try:
            if client.get("/dashboard/login").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail("ichido dashboard did not answer in time")


def test_the_page_works_in_a_host_that_never_runs_ichidos_lifespan(
        dashboard_app: ichido.App) -> None:
    host = Starlette(routes=[Mount("/ichido", app=dashboard_app)])  # no lifespan passed on
    with TestClient(host) as client:
        client.post("/ichido/dashboard/login", data={"token": TOKEN})
        assert 'data-counter="received"' in client.get("/ichido/dashboard/").text
