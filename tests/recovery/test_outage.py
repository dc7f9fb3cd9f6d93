"""Done when: the receiver is down for four emulated days while orders are paid, expire and
are refunded; Stripe gives up; ``ichido reconcile`` brings every effect about exactly once, and
the final states equal those of a run where every event arrived in order."""

from __future__ import annotations

from pathlib import Path

from tests.recovery.conftest import DAY, World
from tests.support import wait_until


def story(world: World, *, outage: bool) -> dict:
    """One shop's four days. With ``outage`` the receiver is down from the second order on."""
    world.up()
    first = world.order("live-2026-12", "card", "a@example.com")
    world.settle()
    if outage:
        assert world.reconcile()["reconciled"] == 0  # the cursor starts here
        world.down()
    world.order("tour-tshirt", "card", "b@example.com")  # paid
    world.order("live-2026-12", "konbini", "c@example.com")  # pays after three minutes
    world.order("live-2026-12", "konbini", "d.fill_never@example.com")  # expires on day 3
    refunded = world.order("live-2026-12", "card", "e@example.com")
    world.refund(refunded)
    world.refund(first)
    for _ in range(4):  # four days pass, one at a time
        world.advance(DAY)
        if not outage:
            world.settle()
    return {"first": first}


def test_reconcile_after_four_days_down_equals_an_in_order_run(
        database_url: str, tmp_path: Path, make_world) -> None:
    reference = make_world(f"sqlite:///{tmp_path / 'in-order.db'}", "in-order")
    story(reference, outage=False)
    reference.settle()
    expected = reference.state()
    assert ("d.fill_never@example.com", "expired") in expected["orders"]
    assert ("c@example.com", "paid") in expected["orders"]

    world = make_world(database_url, "outage")
    story(world, outage=True)
    missed = [e for e in world.emulator.events() if e["pending_webhooks"]]
    assert missed, "the outage made Stripe miss nothing"
    wait_until(lambda: world.gave_up() >= len(missed), timeout=120,
               message="Stripe to give up on every event")
    world.up()  # back, but Stripe will not send those again
    world.process()
    assert world.state() != expected

    report = world.reconcile()
    assert report["reconciled"] == len(missed)
    assert report["warnings"] == []
    world.process()
    assert world.state() == expected
    stats = world.stats()
    assert stats["processed"] == stats["unique"] and stats["dead"] == 0
    assert stats["reconciled"] == len(missed) and stats["stale"] == 0

    again = world.reconcile()  # nothing new; every event it lists is caught as stored
    assert again["reconciled"] == 0 and again["known"] >= len(missed)
    world.process()
    assert world.state() == expected
    print(f"recovered {report['reconciled']} events; second run caught {again['known']}")
