"""The database under the inbox: plain transactions roll back on an error, and a schema step is
one transaction, reported by its name when it fails."""

from __future__ import annotations

import pytest

from ichido.config import Settings
from ichido.db import open_database
from ichido.errors import SchemaError
from tests.apps.broken_schema import BROKEN_STEP
from tests.inbox.support import Stores, open_stores
from tests.support import effect_counts


def test_ping_and_plain_transactions(stores: Stores) -> None:
    stores.inbox.ping()
    with pytest.raises(ZeroDivisionError):
        with stores.database.transaction() as tx:
            tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
                       ("evt_rolled_back", "t", 1))
            1 / 0
    with stores.database.transaction() as tx:
        tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
                   ("evt_kept", "t", 1))
    assert effect_counts(stores.database) == {"evt_kept": 1}


def test_a_schema_step_with_invalid_sql_is_reported_as_that_step(database_url: str) -> None:
    """Not as an unreachable database (``storage_unavailable``): the server is fine, the step
    is not. The step is one transaction: its valid first statement is rolled back too."""
    settings = Settings(database_url=database_url)
    with pytest.raises(SchemaError) as failed:
        open_database(settings, migrate=True, steps=[BROKEN_STEP]).close()
    assert failed.value.code == "migration_failed"
    assert failed.value.message.startswith("migration step test_broken v1 failed on ")
    assert "TABLEX" in failed.value.message and "\n" not in failed.value.message
    store = open_stores(database_url)
    try:
        with pytest.raises(store.database.engine_errors):
            with store.database.transaction() as tx:
                tx.execute("SELECT count(*) FROM broken_first")
    finally:
        store.close()
