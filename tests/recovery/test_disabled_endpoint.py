"""Events made while the endpoint was disabled in Stripe's Dashboard are never sent, then or
after it is enabled again (they do not even count in ``pending_webhooks``): ``ichido reconcile``
stores them and the shop ends as a run where every event arrived, each effect once."""

from __future__ import annotations

from pathlib import Path

from tests.recovery.conftest import World


def story(world: World, *, disabled: bool) -> None:
    world.up()
    world.order("live-2026-12", "card", "a@example.com")
    world.settle()
    if disabled:
        assert world.reconcile()["reconciled"] == 0  # the cursor starts here
        world.emulator.endpoint(world.webhook_url, enabled=False)
    refunded = world.order("tour-tshirt", "card", "b@example.com")
    world.refund(refunded)
    world.order("live-2026-12", "konbini", "c@example.com")  # pays after three minutes
    world.advance(600)
    world.settle()
    if disabled:
        world.emulator.endpoint(world.webhook_url, enabled=True)
    world.settle()  # enabled again: Stripe sends nothing of what it made meanwhile


def test_events_made_while_the_endpoint_was_disabled_are_recovered_by_reconcile(
        database_url: str, tmp_path: Path, make_world) -> None:
    reference = make_world(f"sqlite:///{tmp_path / 'enabled.db'}", "enabled")
    story(reference, disabled=False)
    expected = reference.state()

    world = make_world(database_url, "disabled")
    story(world, disabled=True)
    with world.app.database.reading() as tx:
        stored = {r[0] for r in tx.execute("SELECT id FROM ichido_events").fetchall()}
    missed = [e for e in world.emulator.events() if e["id"] not in stored]
    assert missed and not any(e["pending_webhooks"] for e in missed)  # never to be sent
    assert ("c@example.com", "paid") in expected["orders"]
    assert ("c@example.com", "paid") not in world.state()["orders"]  # told by webhook only

    report = world.reconcile()
    assert report["reconciled"] == len(missed) and report["warnings"] == []
    world.process()
    assert world.state() == expected
    assert world.reconcile()["reconciled"] == 0
