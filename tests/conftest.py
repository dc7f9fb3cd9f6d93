"""Fixtures shared by every test module. Backends are parametrized here, once: every test that
takes ``database_url`` or ``settings`` runs on SQLite, PostgreSQL, and PostgreSQL + Redis.

PostgreSQL and Redis tests need the servers (``ICHIDO_TEST_POSTGRES_URL``, default
postgresql://postgres@127.0.0.1:5432/test; ``ICHIDO_TEST_REDIS_URL``, default
redis://127.0.0.1:6379/15). Without them they skip with the reason, except under CI=true, where
a missing server is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
import redis

from ichido.config import Settings
from ichido.testing import postgres_schema
from tests.support import SECRET

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get("ICHIDO_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ICHIDO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

BACKENDS = ["sqlite", "postgres", "postgres+redis"]


def need_server(name: str, problem: Exception) -> None:
    message = f"{name} is not reachable ({problem})"
    if IN_CI:
        pytest.fail(f"{message}: CI must run every backend", pytrace=False)
    pytest.skip(f"{message}; set it up to run these tests")


def connect_admin() -> psycopg.Connection:
    """A short-lived connection (not one per session: fault tests restart the server)."""
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        need_server("PostgreSQL", exc)
        raise


@pytest.fixture
def postgres_admin() -> Iterator[psycopg.Connection]:
    with connect_admin() as admin:
        yield admin


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema, migrated, dropped afterwards."""
    connect_admin().close()  # skip (or fail in CI) when the server is not there
    from ichido import App

    with postgres_schema(POSTGRES_URL, prefix="ichido_t") as url:
        App(Settings(database_url=url), workers=0).migrate()
        yield url


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        need_server("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty store of each backend. With Redis, ICHIDO_REDIS_URL is set in the
    environment, so subprocesses and ``Settings.from_env`` pick it up as users would."""
    monkeypatch.delenv("ICHIDO_REDIS_URL", raising=False)
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ichido.db'}"
    url = request.getfixturevalue("postgres_url")
    if request.param == "postgres+redis":
        monkeypatch.setenv("ICHIDO_REDIS_URL", request.getfixturevalue("redis_url"))
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, redis_url=os.environ.get("ICHIDO_REDIS_URL"),
                    webhook_secrets=(SECRET,), retry_base_seconds=0.01, retry_cap_seconds=0.05,
                    poll_interval_seconds=0.02)


@pytest.fixture
def fault_db(postgres_admin: psycopg.Connection, redis_url: str) -> Iterator[str]:
    """A schema with ichido's and the effects app's tables, migrated as a deployment does, for
    tests with real processes (both servers must be there: skip or fail as above)."""
    from tests.support import migrated_schema

    with migrated_schema(POSTGRES_URL) as url:
        yield url


AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode (tests/aws/conftest.py says which of its gaps no test leans on)."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    from ichido.aws.local import start_moto

    server = start_moto()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's environment points boto3 (and subprocesses) at moto."""
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "ICHIDO_QUEUE_URL", "ICHIDO_DLQ_URL", "ICHIDO_AWS_LAYOUT",
                 "ICHIDO_BODY_BUCKET", "ICHIDO_MAX_BODY"):
        monkeypatch.delenv(name, raising=False)
    return moto_endpoint


@pytest.fixture(params=["sqlite", "postgres", "dynamodb"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each engine, DynamoDB included (a table of its own in moto),
    for the contract of a seam that DynamoDB implements too."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ichido.db'}"
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    request.getfixturevalue("aws")
    import uuid

    from ichido.db.dynamodb import DynamoDatabase

    table = f"ichido-{uuid.uuid4().hex[:10]}"
    DynamoDatabase(table).create_table()
    return f"dynamodb://{table}"
