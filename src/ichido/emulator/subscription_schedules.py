"""Subscription schedules: phases of a subscription planned ahead (create, update, cancel,
release, retrieve, list), run on the emulator clock or on the customer's test clock.

docs.stripe.com/billing/subscriptions/subscription-schedules: a schedule for ``customer``
starts at ``start_date`` (``now`` or a time; ``subscription_schedule.created``): its
subscription is created then (``customer.subscription.created``…) and the schedule is
``active``; each phase (``items`` with ``price`` and ``quantity``; ``end_date``, or
``iterations`` of the first price's interval — what the CLI's fixtures send; the last phase
defaults to one) sets the subscription's quantity when it begins. Seven days before the last
phase ends: ``subscription_schedule.expiring``. At its end: ``completed``
(``subscription_schedule.completed``), the subscription kept (``end_behavior=release``, the
default) or canceled (``cancel``). ``release`` leaves the subscription on its own
(``released``); ``cancel`` cancels it too (``canceled``); dunning that cancels the
subscription cancels the schedule (``aborted``); an update of ``metadata`` or
``end_behavior`` emits ``subscription_schedule.updated``. A customer on a test clock
(``test_clock``) lives on that clock's time: its schedules move when the clock is advanced.
Parameters: ``versions`` refuses what the request's API version lacks (a phase's
``iterations`` included, which the CLI's fixtures send); the handlers refuse what they do not
model.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import forms, objects, reading
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, snapshot
from ichido.emulator.subscriptions import Subscriptions, period_end
from ichido.emulator.test_clocks import KIND as CLOCK, TestClocks

KIND = "subscription_schedule"
EXPIRING_BEFORE = 7 * 86400
END_BEHAVIORS = ("release", "cancel")
PHASE_KEYS = ("items", "end_date", "metadata")


class SubscriptionSchedules:
    def __init__(self, store: Store, subscriptions: Subscriptions, clocks: TestClocks) -> None:
        self.store, self.subscriptions = store, subscriptions
        clocks.listeners.append(self._clock_moved)
        subscriptions.invoices.listeners.append(self._on_invoice)  # after the subscription's
        store.due_actions.update(schedule_step=self._due_step)

    # -- API -------------------------------------------------------------------------------
    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"customer", "start_date", "end_behavior", "phases", "metadata",
                                   "expand"})
        cust = self.store.get("customer", forms.text(params, "customer", required=True) or "",
                              "customer")
        now = self._now(cust)
        raw_start = forms.text(params, "start_date") or "now"
        start = now if raw_start == "now" else forms.integer(params, "start_date")
        assert start is not None
        phases = self._phases(params.get("phases"), start)
        sched = self.store.add({
            "id": objects.new_id("sub_sched"), "object": KIND, "application": None,
            "canceled_at": None, "completed_at": None, "created": self.store.clock.now(),
            "current_phase": None, "customer": cust["id"],
            "default_settings": {"application_fee_percent": None, "automatic_tax": {
                "enabled": False}, "billing_cycle_anchor": "automatic",
                "collection_method": "charge_automatically", "default_payment_method": None,
                "description": None, "invoice_settings": {"days_until_due": None},
                "on_behalf_of": None, "transfer_data": None},
            "end_behavior": self._end_behavior(params) or "release", "livemode": False,
            "metadata": forms.metadata(params), "phases": phases, "released_at": None,
            "released_subscription": None, "status": "not_started", "subscription": None,
            "test_clock": cust["test_clock"]})
        self.store.emit(f"{KIND}.created", sched)
        self._step(sched, now)
        return sched

    def update(self, sched_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"metadata", "end_behavior", "expand"})
        sched = self._live(sched_id)
        before = snapshot(sched)
        if "metadata" in params:
            merged = {**sched["metadata"], **forms.metadata(params)}
            sched["metadata"] = {k: v for k, v in merged.items() if v != ""}
        behavior = self._end_behavior(params)
        if behavior:
            sched["end_behavior"] = behavior
        if sched != before:
            self.store.emit_update(f"{KIND}.updated", sched, before)
        return sched

    def cancel(self, sched_id: str, params: dict[str, Any]) -> dict[str, Any]:
        sched = self._live(sched_id)
        sub = self._subscription(sched)
        if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
            self.subscriptions.cancel(sub["id"], {})
        before = snapshot(sched)
        sched.update(status="canceled", canceled_at=self.store.clock.now(), current_phase=None)
        self.store.emit_update(f"{KIND}.canceled", sched, before)
        return sched

    def release(self, sched_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        sched = self._live(sched_id)
        sub = self._subscription(sched)
        if sub is not None:
            sub["schedule"] = None
        before = snapshot(sched)
        sched.update(status="released", released_at=self.store.clock.now(),
                     released_subscription=sched["subscription"], subscription=None,
                     current_phase=None)
        self.store.emit_update(f"{KIND}.released", sched, before)
        return sched

    def retrieve(self, sched_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get(KIND, sched_id, "schedule")

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return reading.listing(self.store, KIND, "/v1/subscription_schedules",
                               "customer")(params)

    def _on_invoice(self, inv: dict[str, Any], what: str) -> None:
        """Dunning gave up and canceled a scheduled subscription: Stripe cancels the schedule
        with ``subscription_schedule.aborted`` ("canceled due to the underlying subscription
        being canceled because of delinquency", Stripe's event reference)."""
        sub = self.store.objects["subscription"].get(inv["subscription"] or "")
        if what != "lapsed" or sub is None or sub["status"] != "canceled" \
                or not sub.get("schedule"):
            return
        sched = self.store.objects[KIND].get(sub["schedule"])
        if sched is None or sched["status"] not in ("not_started", "active"):
            return
        sched = self.store.get(KIND, sched["id"])  # journaled
        before = snapshot(sched)
        sched.update(status="canceled", canceled_at=self.store.clock.now(), current_phase=None)
        self.store.emit_update(f"{KIND}.aborted", sched, before)

    # -- time ------------------------------------------------------------------------------
    def _now(self, cust: dict[str, Any]) -> int:
        """The customer's time: its test clock's frozen time, else the emulator clock."""
        clock = self.store.objects[CLOCK].get(cust["test_clock"] or "")
        return clock["frozen_time"] if clock else self.store.clock.now()

    def _clock_moved(self, clock: dict[str, Any]) -> None:
        for sched in list(self.store.objects[KIND].values()):
            if sched["test_clock"] == clock["id"]:
                self._step(self.store.get(KIND, sched["id"]), clock["frozen_time"])

    def _due_step(self, sched_id: str, token: str) -> None:
        sched = self.store.objects[KIND].get(sched_id)
        if sched is not None and sched["test_clock"] is None:
            self._step(self.store.get(KIND, sched_id), self.store.clock.now())

    def _step(self, sched: dict[str, Any], now: int) -> None:
        """Everything due by ``now``: the start, each phase's begin, the warning, the end."""
        if sched["status"] not in ("not_started", "active"):
            return
        phases, private = sched["phases"], self.store.private.setdefault(sched["id"], {})
        if sched["status"] == "not_started" and phases[0]["start_date"] <= now:
            self._start(sched)
        for phase in phases if sched["status"] == "active" else ():
            if phase["start_date"] <= now < phase["end_date"] and \
                    sched["current_phase"] != _span(phase):
                self._enter(sched, phase)
        end = phases[-1]["end_date"]
        if sched["status"] == "active" and end - EXPIRING_BEFORE <= now < end \
                and not private.get("warned"):
            private["warned"] = True
            self.store.emit(f"{KIND}.expiring", sched)
        if sched["status"] == "active" and now >= end:
            self._complete(sched)
        elif sched["test_clock"] is None:  # the next moment something happens
            moments = [t for p in phases for t in (p["start_date"], p["end_date"])] + \
                [end - EXPIRING_BEFORE]
            later = [t for t in moments if t > now]
            if later:
                self.store.schedule(min(later), "schedule_step", sched["id"])

    def _start(self, sched: dict[str, Any]) -> None:
        first = sched["phases"][0]["items"][0]
        cust = self.store.get("customer", sched["customer"])
        has_method = cust["invoice_settings"]["default_payment_method"] or \
            cust["default_source"]
        sub = self.subscriptions.create({
            "customer": sched["customer"],
            "items": [{"price": first["price"], "quantity": str(first["quantity"])}],
            "payment_behavior": "allow_incomplete" if has_method else "default_incomplete"})
        sub["schedule"] = sched["id"]
        before = snapshot(sched)
        sched.update(status="active", subscription=sub["id"])
        self.store.emit_update(f"{KIND}.updated", sched, before)

    def _enter(self, sched: dict[str, Any], phase: dict[str, Any]) -> None:
        before = snapshot(sched)
        sched["current_phase"] = _span(phase)
        sub = self._subscription(sched)
        quantity = phase["items"][0]["quantity"]
        if sub is not None and sub["items"]["data"][0]["quantity"] != quantity:
            sub_before = snapshot(sub)
            sub["items"]["data"][0]["quantity"] = quantity
            self.store.emit_update("customer.subscription.updated", sub, sub_before)
        if before["current_phase"] is not None:
            self.store.emit_update(f"{KIND}.updated", sched, before)

    def _complete(self, sched: dict[str, Any]) -> None:
        sub = self._subscription(sched)
        if sub is not None and sched["end_behavior"] == "cancel" and \
                sub["status"] not in ("canceled", "incomplete_expired"):
            self.subscriptions.cancel(sub["id"], {})
        elif sub is not None:
            sub["schedule"] = None
        before = snapshot(sched)
        sched.update(status="completed", completed_at=self.store.clock.now(),
                     current_phase=None)
        self.store.emit_update(f"{KIND}.completed", sched, before)

    # -- inputs ----------------------------------------------------------------------------
    def _phases(self, raw: Any, start: int) -> list[dict[str, Any]]:
        if isinstance(raw, dict):  # phases[0][...] with numeric keys, as the CLI writes them
            raw = [raw[k] for k in sorted(raw, key=int)] if all(
                k.isdigit() for k in raw) else None
        if not isinstance(raw, list) or not raw or not all(isinstance(p, dict) for p in raw):
            raise invalid("Missing required param: phases.", param="phases",
                          code="parameter_missing")
        phases, begin = [], start
        for i, given in enumerate(raw):
            where = f"phases[{i}]"
            forms.check_known(given, {*PHASE_KEYS, "iterations"}, where)
            items = self._items(given.get("items"), where)
            price = self.store.get("price", items[0]["price"])
            end = forms.integer(given, "end_date", param=f"{where}[end_date]")
            iterations = forms.integer(given, "iterations", param=f"{where}[iterations]")
            if end is None:
                end = begin
                for _ in range(iterations or 1):
                    end = period_end(end, price["recurring"])
            if end <= begin:
                raise invalid(f"{where}[end_date] must be after the phase's start.",
                              param=f"{where}[end_date]")
            phases.append({"add_invoice_items": [], "application_fee_percent": None,
                           "billing_cycle_anchor": None, "collection_method": None,
                           "currency": price["currency"], "default_payment_method": None,
                           "description": None, "discounts": [], "end_date": end,
                           "invoice_settings": None, "items": items,
                           "metadata": forms.metadata(given),
                           "proration_behavior": "create_prorations", "start_date": begin,
                           "trial_end": None})
            begin = end
        return phases

    def _items(self, raw: Any, where: str) -> list[dict[str, Any]]:
        if not isinstance(raw, list) or len(raw) != 1 or not isinstance(raw[0], dict):
            raise invalid(f"The emulator takes exactly one item: {where}[items][0][price].",
                          param=f"{where}[items]")
        forms.check_known(raw[0], {"price", "quantity", "metadata"}, f"{where}[items][0]")
        price = self.store.get("price", forms.text(raw[0], "price", required=True,
                                                   param=f"{where}[items][0][price]") or "",
                               f"{where}[items][0][price]")
        if price["recurring"] is None:
            raise invalid("A schedule's prices are recurring.", param=f"{where}[items][0]")
        quantity = forms.integer(raw[0], "quantity") or 1
        return [{"billing_thresholds": None, "discounts": [], "metadata": {},
                 "price": price["id"], "quantity": quantity, "tax_rates": []}]

    @staticmethod
    def _end_behavior(params: dict[str, Any]) -> str | None:
        behavior = forms.text(params, "end_behavior")
        if behavior is not None and behavior not in END_BEHAVIORS:
            raise invalid(f"Invalid end_behavior: must be one of {', '.join(END_BEHAVIORS)}",
                          param="end_behavior")
        return behavior

    def _live(self, sched_id: str) -> dict[str, Any]:
        sched = self.store.get(KIND, sched_id, "schedule")
        if sched["status"] not in ("not_started", "active"):
            raise invalid(f"You cannot change a subscription schedule that is "
                          f"{sched['status']}.", param="schedule")
        return sched

    def _subscription(self, sched: dict[str, Any]) -> dict[str, Any] | None:
        sub_id = sched["subscription"]
        return self.store.get("subscription", sub_id) if sub_id else None


def _span(phase: dict[str, Any]) -> dict[str, int]:
    return {"end_date": phase["end_date"], "start_date": phase["start_date"]}
