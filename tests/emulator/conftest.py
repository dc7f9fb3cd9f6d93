"""Fixtures for the emulator's tests: an emulator served on loopback, and SDK clients."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest
import stripe

from ichido.emulator import Emulator, EmulatorServer
from tests.emulator.support import KEY, client


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(api_key=KEY)


@pytest.fixture
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as running:
        yield running


@pytest.fixture
def sdk(server: EmulatorServer) -> stripe.StripeClient:
    """The official client with nothing changed but its API base."""
    return client(server.url)


@pytest.fixture
def http(server: EmulatorServer) -> Iterator[httpx.Client]:
    """Raw HTTP, for what the SDK hides (headers, form encoding, error bodies)."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c
