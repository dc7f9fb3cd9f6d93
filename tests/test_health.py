"""``/healthz`` tells whether a delivery can be stored now, on a real ``ichido serve``: not
when the store's directory was deleted under it, not when the disk is full; and a store whose
directory does not exist is an error at start, not a new empty store."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import httpx

from ichido.inbox.sqlite import intake_path

from tests.support import SECRET, deliver, make_event, run_cli, start_server, wait_until
from tests.test_cli_output import one_line_error

FULL = ("CREATE TRIGGER full BEFORE INSERT ON ichido_intake"
        " BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END")


def health(url: str) -> httpx.Response:
    return httpx.get(f"{url}/healthz", timeout=30)


def test_a_deleted_store_directory_is_unhealthy_with_a_reason(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = start_server(f"sqlite:///{data / 'ichido.db'}", workers=1)
    try:
        with httpx.Client(timeout=30) as client:
            assert deliver(server.url, make_event("charge.succeeded"), client).status_code == 200
            assert health(server.url).status_code == 200
            shutil.rmtree(data)
            answer = health(server.url)
            late = server.post(make_event("charge.succeeded"), client)
    finally:
        server.stop()
    assert answer.status_code == 503, answer.text
    assert "directory was deleted" in answer.json()["storage"]
    assert late.status_code == 503  # written into a deleted file, it would be lost


def test_a_full_disk_is_unhealthy_and_healthy_again_once_space_returns(tmp_path: Path) -> None:
    store = tmp_path / "ichido.db"
    server = start_server(f"sqlite:///{store}", workers=1)
    body = make_event("charge.succeeded")
    try:
        with httpx.Client(timeout=30) as client:
            assert health(server.url).status_code == 200
            with sqlite3.connect(intake_path(str(store))) as intake:  # every write refused
                intake.execute(FULL)
            refused = server.post(body, client)
            sick = health(server.url)
            with sqlite3.connect(intake_path(str(store))) as intake:  # space returns
                intake.execute("DROP TRIGGER full")
            stored = deliver(server.url, body, client)  # Stripe retries
            wait_until(lambda: health(server.url).status_code == 200, timeout=60,
                       message="healthy again")
    finally:
        server.stop()
    assert refused.status_code == 503
    assert sick.status_code == 503, sick.text
    assert "disk is full" in sick.json()["storage"]
    assert stored.json()["status"] == "accepted"


def test_a_store_whose_directory_does_not_exist_is_an_error_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    done = run_cli("serve", "--port", "0", database_url=f"sqlite:///{missing / 'ichido.db'}",
                   env={"STRIPE_WEBHOOK_SECRET": SECRET})
    assert "does not exist" in one_line_error(done, "store_directory_missing")
    assert not missing.exists()
