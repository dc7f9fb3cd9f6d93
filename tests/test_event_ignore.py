"""A handler may say an event is none of its business (``Event.ignore``): the worker marks it
``ignored`` with the reason, when every handler that ran said so, and ``processed`` otherwise."""

from __future__ import annotations

from typing import Any

from ichido.config import Settings
from ichido.event import parse_delivery
from tests.support import in_process_app, make_event


def worked(database_url: str, *handlers: Any) -> Any:
    app = in_process_app(Settings(database_url=database_url))
    for handler in handlers:
        app.on("invoice.paid")(handler)
    return app


def run(app: Any, body: bytes) -> Any:
    delivery = parse_delivery(body)
    app.inbox.accept([delivery])
    app.worker().drain()
    return app.inbox.get(delivery.id)


def ignoring(event: Any, tx: Any) -> None:
    event.ignore("unknown_subscription:sub_x")


def applying(event: Any, tx: Any) -> None:
    tx.execute("INSERT INTO effects (event_id, type, attempt) VALUES (?, ?, ?)",
               (event.id, event.type, event.attempt))


def test_an_event_every_handler_ignores_is_ignored_with_the_reasons(database_url: str) -> None:
    app = worked(database_url, ignoring)
    try:
        record = run(app, make_event("invoice.paid"))
        assert record.status == "ignored" and record.attempts == 1
        assert record.last_error == "unknown_subscription:sub_x"
    finally:
        app.close()


def test_an_event_one_handler_applies_is_processed_and_its_write_kept(
        database_url: str) -> None:
    app = worked(database_url, ignoring, applying)
    try:
        record = run(app, make_event("invoice.paid"))
        assert record.status == "processed" and not record.last_error
        with app.database.reading() as tx:
            assert tx.execute("SELECT count(*) FROM effects").fetchone()[0] == 1
    finally:
        app.close()
