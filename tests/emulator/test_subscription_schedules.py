"""Subscription schedules through the SDK: the events Stripe sends on its own, from the clock
(``subscription_schedule.expiring`` seven days before the end, on the customer's test clock)
and from dunning (``subscription_schedule.aborted``: "canceled due to the underlying
subscription being canceled because of delinquency", Stripe's event reference)."""

from __future__ import annotations

import stripe

from ichido.emulator import Emulator
from ichido.emulator.invoices import CARD_RETRY_DAYS
from tests.emulator.test_billing import DAY, card_customer, plan, renew

EXPIRING_BEFORE = 7 * DAY


def test_a_schedule_whose_subscription_dunning_ends_is_aborted(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    customer = card_customer(sdk)
    sched = sdk.v1.subscription_schedules.create(params={
        "customer": customer.id, "start_date": "now",
        "phases": [{"items": [{"price": plan(sdk).id}], "end_date": emulator.now() + 200 * DAY}]})
    sub = sdk.v1.subscriptions.retrieve(sched.subscription)
    sdk.v1.subscriptions.update(sub.id, params={"default_payment_method":
                                                "pm_card_chargeCustomerFail"})
    renew(emulator, sub)
    for days in CARD_RETRY_DAYS:
        emulator.advance(days * DAY)
    assert sdk.v1.subscriptions.retrieve(sub.id).status == "canceled"
    aborted = sdk.v1.subscription_schedules.retrieve(sched.id)
    assert (aborted.status, aborted.canceled_at) == ("canceled", emulator.now())
    kinds = [e["type"] for e in emulator.events() if e["data"]["object"]["id"] == sched.id]
    assert kinds[-1] == "subscription_schedule.aborted"
    assert "subscription_schedule.canceled" not in kinds  # aborted is the cancel's own event


def test_a_schedule_canceled_by_the_merchant_is_canceled_not_aborted(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    sched = sdk.v1.subscription_schedules.create(params={
        "customer": card_customer(sdk).id, "start_date": emulator.now() + 30 * DAY,
        "phases": [{"items": [{"price": plan(sdk).id}]}]})
    sdk.v1.subscription_schedules.cancel(sched.id)
    kinds = [e["type"] for e in emulator.events() if e["data"]["object"]["id"] == sched.id]
    assert kinds == ["subscription_schedule.created", "subscription_schedule.canceled"]


def test_expiring_comes_seven_days_before_the_end_on_the_test_clock(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    start = 1577836800
    clock = sdk.v1.test_helpers.test_clocks.create(params={"frozen_time": start})
    customer = sdk.v1.customers.create(params={"test_clock": clock.id,
                                               "payment_method": "pm_card_visa"})
    end = start + 28 * DAY
    sched = sdk.v1.subscription_schedules.create(params={
        "customer": customer.id, "start_date": start, "end_behavior": "cancel",
        "phases": [{"items": [{"price": plan(sdk).id}], "end_date": end}]})

    def expiring() -> int:
        return sum(e["type"] == "subscription_schedule.expiring"
                   and e["data"]["object"]["id"] == sched.id for e in emulator.events())
    sdk.v1.test_helpers.test_clocks.advance(clock.id, params={
        "frozen_time": end - EXPIRING_BEFORE - 1})
    assert expiring() == 0
    sdk.v1.test_helpers.test_clocks.advance(clock.id, params={
        "frozen_time": end - EXPIRING_BEFORE})
    assert expiring() == 1
    sdk.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": end})
    assert expiring() == 1
    assert sdk.v1.subscription_schedules.retrieve(sched.id).status == "completed"
