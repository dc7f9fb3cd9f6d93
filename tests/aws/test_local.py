"""``ichido aws local`` in a subprocess, used as a developer would: POST to the printed URL,
then ``ichido stats``, ``dlq list`` and ``dlq retry`` with the printed environment."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import boto3
import httpx
import orjson
import pytest

from tests.aws.support import large_event
from tests.support import (ROOT, SECRET, free_port, json_of, make_event, run_cli,
                           signed_headers, wait_until)


class LocalLayout:
    def __init__(self, *args: str, env: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("ICHIDO_", "AWS_")) and k != "STRIPE_WEBHOOK_SECRET"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ichido", "aws", "local", "--port", str(free_port()),
             "--retry-after", "0", *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env={**base, "PYTHONPATH": str(ROOT),
                                           "STRIPE_WEBHOOK_SECRET": SECRET, **env})
        self.url, self.env = "", {}
        deadline = time.monotonic() + 60
        while not self.env:
            line = self.proc.stdout.readline()
            if not line and (self.proc.poll() is not None or time.monotonic() > deadline):
                raise RuntimeError(f"ichido aws local did not start: {self.proc.stdout.read()}")
            if line.startswith("webhook URL: "):
                self.url = line.split(": ", 1)[1].strip()
            elif line.startswith("environment: "):
                self.env = dict(pair.split("=", 1) for pair in shlex.split(line.split(": ", 1)[1]))

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(self.url, content=body, headers=signed_headers(body), timeout=30)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, env=self.env)

    def stats(self) -> dict:
        return json_of(self.cli("stats", "--json"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def fix_file(tmp_path: Path) -> Path:
    return tmp_path / "fixed"


@pytest.fixture
def sqs_postgres(postgres_url: str, fix_file: Path) -> Iterator[LocalLayout]:
    layout = LocalLayout("--app", "tests.apps.effects:app",
                         env={"ICHIDO_DATABASE_URL": postgres_url,
                              "EFFECTS_FIX_FILE": str(fix_file)})
    yield layout
    layout.stop()


def test_sqs_postgres_end_to_end_with_the_dlq_replayed_by_the_cli(
        sqs_postgres: LocalLayout, fix_file: Path) -> None:
    layout = sqs_postgres
    bodies = [make_event("charge.succeeded") for _ in range(6)]
    for body in bodies + bodies[:2]:
        assert layout.post(body).status_code == 200
    broken = make_event("test.always_fails")
    assert layout.post(broken).status_code == 200
    bad = layout.post(b'{"id": "evt_x"}')
    assert bad.status_code == 400  # bad input: the same answer as `ichido serve`

    stats = wait_until(lambda: (s := layout.stats())["dead"] == 1 and s["processed"] == 6 and s,
                       message="six applied, one dead")
    assert stats["unique"] == 6 and stats["received"] >= 8
    dead = json_of(layout.cli("dlq", "list", "--json"))
    assert [d["id"] for d in dead] == [orjson.loads(broken)["id"]]
    fix_file.touch()
    retried = layout.cli("dlq", "retry", "--all")
    assert retried.returncode == 0 and "requeued 1" in retried.stdout, retried.stderr
    wait_until(lambda: layout.stats()["processed"] == 7, message="the replayed event applied")
    shown = json_of(layout.cli("events", "show", orjson.loads(broken)["id"], "--json"))
    assert shown["status"] == "processed" and len(shown["failures"]) == 3


def test_streams_dynamodb_end_to_end(tmp_path: Path) -> None:
    table = f"effects-{uuid.uuid4().hex[:8]}"
    layout = LocalLayout("--layout", "streams", "--app", "tests.aws.dynamodb_app:app",
                         env={"EFFECTS_TABLE": table})
    try:
        client = boto3.client("dynamodb", endpoint_url=layout.env["AWS_ENDPOINT_URL"],
                              region_name="us-east-1", aws_access_key_id="local",
                              aws_secret_access_key="local")
        client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}])
        bodies = [make_event("charge.succeeded") for _ in range(3)] + [large_event()]
        answers = [layout.post(body).json()["status"] for body in bodies + bodies[-1:]]
        assert answers == ["accepted"] * 4 + ["duplicate"]  # the 500 KB one: out of line in S3
        wait_until(lambda: layout.stats()["processed"] == 4, message="four applied")
        large = json_of(layout.cli("events", "show", orjson.loads(bodies[-1])["id"], "--json"))
        assert large["status"] == "processed"
        items = client.scan(TableName=table)["Items"]
        assert sorted(i["pk"]["S"] for i in items) == sorted(orjson.loads(b)["id"] for b in bodies)
    finally:
        layout.stop()
