"""The ``Inbox`` contract: what every storage backend must do, run unchanged on each one.

The backend comes from the ``database_url`` fixture (tests/conftest.py parametrizes it), so a new
backend is covered by adding it there. The test modules here split the contract by operation:
accept, claim, finishing, failures and dead letters, prune, reads, transactions.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.inbox.support import Stores
from tests.support import migrate_effects


@pytest.fixture
def stores(database_url: str) -> Iterator[Stores]:
    migrate_effects(database_url)
    opened = Stores(database_url)
    yield opened
    opened.close()
