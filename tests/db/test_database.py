"""The database role, on SQLite and PostgreSQL: handlers' portable ``?`` SQL.

Handlers write ``?`` placeholders on every engine; on PostgreSQL they become psycopg's ``%s``
by PostgreSQL's own lexical rules, so a ``?`` that is text (a literal, a quoted identifier, a
comment) or a jsonb operator stays what it is. Each case runs on the real server.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from ichido.config import Settings
from ichido.db import Database, open_database
from tests.support import effects_schema

ENGINES = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    opened = open_database(Settings(database_url=database_url), migrate=True,
                           steps=effects_schema())
    yield opened
    opened.close()


@ENGINES
def test_a_question_mark_in_a_literal_an_identifier_or_a_comment_is_not_a_placeholder(
        database: Database) -> None:
    with database.transaction() as tx:
        tx.execute('CREATE TABLE "odd?name" ("what?" TEXT, n INTEGER)')
        tx.execute('INSERT INTO "odd?name" ("what?", n) VALUES (\'why?\', ?) -- really?\n', (1,))
        tx.execute('INSERT INTO "odd?name" ("what?", n) /* or ? */ VALUES (?, ?)', ("it''s", 2))
        tx.execute("INSERT INTO \"odd?name\" (\"what?\", n) VALUES ('it''s ? 100%', ?)", (3,))
        rows = tx.execute('SELECT "what?", n FROM "odd?name" WHERE "what?" <> \'?\' AND n > ?'
                          " ORDER BY n", (0,)).fetchall()
    assert [tuple(r) for r in rows] == [("why?", 1), ("it''s", 2), ("it's ? 100%", 3)]


@ENGINES
def test_a_percent_sign_in_code_is_passed_through(database: Database) -> None:
    """psycopg reads the whole string for its own ``%`` markers: ichido doubles each one."""
    with database.transaction() as tx:
        rows = tx.execute("SELECT 7 % 3, ? || '%s'", ("x",)).fetchall()
    assert [tuple(r) for r in rows] == [(1, "x%s")]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_jsonb_operators_stay_operators_on_postgresql(database: Database) -> None:
    """``?|`` and ``?&`` are jsonb's; ``??`` is its ``?`` (a PostgreSQL-only spelling)."""
    with database.transaction() as tx:
        tx.execute("CREATE TABLE docs (id INTEGER, doc JSONB)")
        tx.execute("INSERT INTO docs VALUES (1, ?::jsonb), (2, ?::jsonb)",
                   ('{"a": 1, "b": 2}', '{"c": "?"}'))
        has_a = tx.execute("SELECT id FROM docs WHERE doc ?? ?", ("a",)).fetchall()
        any_of = tx.execute("SELECT id FROM docs WHERE doc ?| ? ORDER BY id",
                            (["b", "c"],)).fetchall()
        all_of = tx.execute("SELECT id FROM docs WHERE doc ?& ?", (["a", "b"],)).fetchall()
        joined = tx.execute("SELECT ?||'!' FROM docs WHERE doc->>'c' = '?'", ("x",)).fetchall()
        dollar = tx.execute("SELECT $q$ ? $q$, $$?$$, ? FROM docs WHERE id = ?",
                            ("p", 1)).fetchall()
    assert [r[0] for r in has_a] == [1]
    assert [r[0] for r in any_of] == [1, 2]
    assert [r[0] for r in all_of] == [1]
    assert [r[0] for r in joined] == ["x!"]
    assert [tuple(r) for r in dollar] == [(" ? ", "?", "p")]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_escape_strings_and_nested_comments_on_postgresql(database: Database) -> None:
    """In E'…' a backslash escapes the quote; a /* … */ comment nests on PostgreSQL."""
    with database.transaction() as tx:
        rows = tx.execute("SELECT E'it\\'s ?', /* a /* b */ ? */ ?, e'?' FROM (SELECT 1) t"
                          " WHERE 1 = ?", ("x", 1)).fetchall()
    assert [tuple(r) for r in rows] == [("it's ?", "x", "?")]


def test_an_error_python_raises_itself_is_a_fault_not_a_busy_lock(tmp_path) -> None:
    """A closed connection's ProgrammingError has no SQLite code: the settle's and the
    intake's error handling must see a fault (StorageUnavailable), not crash reading it."""
    import sqlite3

    from ichido.db.sqlite import is_busy

    conn = sqlite3.connect(tmp_path / "x.db")
    conn.close()
    with pytest.raises(sqlite3.Error) as closed:
        conn.execute("SELECT 1")
    assert is_busy(closed.value) is False
    holder = sqlite3.connect(tmp_path / "y.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(tmp_path / "y.db", timeout=0, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            waiter.execute("BEGIN IMMEDIATE")
        assert is_busy(locked.value) is True
    finally:
        holder.close()
        waiter.close()
