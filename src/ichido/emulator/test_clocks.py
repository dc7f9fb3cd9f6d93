"""Test clocks (``/v1/test_helpers/test_clocks``): create, advance, delete, retrieve, list.

Stripe's test clock (docs.stripe.com/billing/testing/test-clocks) is a frozen time that objects
created on it (a customer's ``test_clock``) live by. Here a test clock is its own object with
Stripe's events — ``test_helpers.test_clock.created``, ``.advancing`` then ``.ready`` when
advanced (the advance finishes at once), ``.deleted`` — while the emulator's one clock
(``/_emulator/clock/advance``) keeps moving everything else. Of the objects attached to a
test clock, subscription schedules follow its time (``subscription_schedules``); the rest
live on the emulator's one time line.
Parameters: ``versions`` refuses what the request's API version lacks; the handlers refuse what
they do not model.
"""

from __future__ import annotations

from typing import Any, Callable

from ichido.emulator import forms, objects, reading
from ichido.emulator.catalog_edits import deleted
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, snapshot

KIND = "test_helpers.test_clock"
DELETES_AFTER = 30 * 86400  # "Test clocks are automatically deleted after 30 days"


class TestClocks:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Told when a clock has moved (its objects' schedules follow it).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"frozen_time", "name", "expand"})
        frozen = forms.integer(params, "frozen_time", required=True)
        assert frozen is not None
        now = self.store.clock.now()
        clock = self.store.add({
            "id": objects.new_id("clock"), "object": KIND, "created": now,
            "deletes_after": now + DELETES_AFTER, "frozen_time": frozen, "livemode": False,
            "name": forms.text(params, "name"), "status": "ready", "status_details": {}})
        self.store.emit(f"{KIND}.created", clock)
        return clock

    def advance(self, clock_id: str, params: dict[str, Any]) -> dict[str, Any]:
        clock = self.store.get(KIND, clock_id, "test_clock")
        target = forms.integer(params, "frozen_time", required=True)
        assert target is not None
        if target <= clock["frozen_time"]:
            raise invalid("The frozen_time must be after the test clock's current "
                          "frozen_time.", param="frozen_time")
        before = snapshot(clock)
        clock.update(status="advancing", status_details={
            "advancing": {"target_frozen_time": target}})
        self.store.emit_update(f"{KIND}.advancing", clock, before)
        answer = snapshot(clock)  # Stripe answers while the clock is still advancing
        before = snapshot(clock)
        clock["frozen_time"] = target
        for listener in self.listeners:
            listener(clock)
        clock.update(status="ready", status_details={})
        self.store.emit_update(f"{KIND}.ready", clock, before)
        return answer

    def delete(self, clock_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        clock = self.store.delete(KIND, clock_id, "test_clock")
        self.store.emit(f"{KIND}.deleted", clock)
        return deleted(clock)

    def retrieve(self, clock_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get(KIND, clock_id, "test_clock")

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return reading.listing(self.store, KIND, "/v1/test_helpers/test_clocks")(params)
