"""The AWS layouts have no fetch stage yet: a thin event with handlers never reaches them
without its object; it fails with its reason (and rests in the dead letters for a replay)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ichido.aws.ledger import SqlLedger
from ichido.aws.worker import EventApplier, Outcome
from ichido.event import parse_delivery
from ichido.handlers import HandlerRegistry
from tests.support import open_store
from tests.thin.support import make_thin


def test_a_thin_event_fails_on_aws_with_its_reason_and_no_handler_runs(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ichido.db'}")
    ran: list[Any] = []
    handlers = HandlerRegistry()
    handlers.on("payment_intent.succeeded")(lambda event, tx: ran.append(event))
    try:
        applier = EventApplier(handlers, SqlLedger(store.database, "test"))
        delivery = parse_delivery(make_thin())
        assert applier.apply(delivery, 1, final=True) is Outcome.FAILED
        assert ran == []
        dead = store.get(delivery.id)
        assert dead.status == "dead" and "thin_not_on_aws" in dead.last_error
    finally:
        store.close()
