"""An ichido app whose one schema step has invalid SQL after a valid statement, for the tests
that a failing step is reported as that step (not as an unreachable database)."""

from __future__ import annotations

import ichido

BROKEN_STEP = ("test_broken", 1, [
    "CREATE TABLE broken_first (id INTEGER NOT NULL)",
    "CREATE TABLEX broken_second (id INTEGER NOT NULL)",
])

app = ichido.App(schema=[BROKEN_STEP])
