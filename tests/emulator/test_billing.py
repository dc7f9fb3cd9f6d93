"""Billing through the SDK: customers, recurring prices, card and konbini subscriptions, their
invoices and events, driven by the emulator clock (issue 14 item 3)."""

from __future__ import annotations

import typing
from typing import Any

import httpx
import pytest
import stripe

from ichido.emulator import Emulator, versions
from ichido.emulator.invoices import CARD_RETRY_DAYS, FINALIZE_AFTER, OVERDUE_CANCEL_AFTER
from ichido.emulator.subscriptions import period_end
from tests.emulator.schemas import event_types, problems

DAY = 86400


def plan(sdk: stripe.StripeClient, amount: int = 980, interval: str = "month") -> Any:
    return sdk.v1.prices.create(params={
        "currency": "jpy", "unit_amount": amount, "recurring": {"interval": interval},
        "product_data": {"name": "Streaming"}, "nickname": "monthly"})


def card_customer(sdk: stripe.StripeClient, card: str = "pm_card_visa") -> Any:
    return sdk.v1.customers.create(params={"email": "hanako@test.com", "name": "Hanako",
                                           "payment_method": card})


def konbini_subscription(sdk: stripe.StripeClient, email: str = "taro@test.com",
                         days: int = 3) -> Any:
    customer = sdk.v1.customers.create(params={"email": email, "name": "Taro"})
    return sdk.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": plan(sdk).id}],
        "collection_method": "send_invoice", "days_until_due": days,
        "payment_settings": {"payment_method_types": ["konbini"]},
        "expand": ["latest_invoice.payments"]})


def period(sub: Any) -> Any:
    """Since 2025-03-31.basil a subscription's period lives on its items."""
    return sub["items"].data[0]


def intent(sdk: stripe.StripeClient, invoice: Any) -> Any:
    """Since basil an invoice's PaymentIntent is one of its payments (``expand[]=payments``)."""
    payments = invoice.payments if "payments" in invoice else sdk.v1.invoice_payments.list(
        params={"invoice": invoice.id})
    return sdk.v1.payment_intents.retrieve(payments.data[0].payment.payment_intent)


def seen(emulator: Emulator) -> set[str]:
    return {e["id"] for e in emulator.events()}


def types_since(emulator: Emulator, before: set[str]) -> list[str]:
    return [e["type"] for e in emulator.events() if e["id"] not in before]


def renew(emulator: Emulator, sub: Any) -> None:
    """Let the period end, then the hour before the renewal invoice is finalized."""
    emulator.advance(period(sub).current_period_end - emulator.now())
    emulator.advance(FINALIZE_AFTER)


def test_a_card_subscription_is_charged_and_becomes_active(sdk: stripe.StripeClient,
                                                           emulator: Emulator) -> None:
    customer = card_customer(sdk)
    sub = sdk.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": plan(sdk).id}],
                "expand": ["latest_invoice.payments"]},
        options={"idempotency_key": "sub-1"})
    assert sub.status == "active" and sub.latest_invoice.status == "paid"
    assert intent(sdk, sub.latest_invoice).status == "succeeded"
    assert sub.latest_invoice.amount_paid == 980 and sub.latest_invoice.lines.data[0].amount == 980
    assert period(sub).current_period_end == period_end(period(sub).current_period_start,
                                                {"interval": "month", "interval_count": 1})
    events = [e for e in emulator.events() if e["type"].startswith(("customer.subscription",
                                                                   "invoice."))]
    assert [(e["type"], e["data"]["object"]["status"]) for e in events] == [
        ("customer.subscription.created", "incomplete"), ("invoice.created", "draft"),
        ("invoice.finalized", "open"), ("invoice.paid", "paid"),
        ("invoice.payment_succeeded", "paid"), ("customer.subscription.updated", "active")]
    assert events[-1]["data"]["previous_attributes"] == {"status": "incomplete"}
    price = sub.items.data[0].price.id
    again = sdk.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price}],
                "expand": ["latest_invoice.payments"]},
        options={"idempotency_key": "sub-1"})
    assert again.id == sub.id  # the SDK's retry with its key: one subscription
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.subscriptions.create(params={"customer": customer.id, "items": [
            {"price": plan(sdk).id}]}, options={"idempotency_key": "sub-1"})
    assert [s.id for s in sdk.v1.subscriptions.list(params={"customer": customer.id}).data] \
        == [sub.id]


def test_a_paid_invoice_tells_its_payment_and_its_subscription_metadata_as_stripe_does(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    """Stripe's invoices carry ``payments`` only when expanded, never in a webhook:
    ``invoice_payment.paid`` is the event that names the PaymentIntent that paid one. And an
    invoice repeats its subscription's metadata under ``parent.subscription_details``."""
    customer = card_customer(sdk)
    sub = sdk.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": plan(sdk).id}],
        "metadata": {"shop_subscription": "s-1"}, "expand": ["latest_invoice.payments"]})
    events = emulator.events()
    paid = [e for e in events if e["type"] == "invoice_payment.paid"]
    assert len(paid) == 1 and "invoice_payment.paid" in typing.get_args(
        stripe.Event.__annotations__["type"])  # a type the SDK knows
    payment = paid[0]["data"]["object"]
    assert payment["invoice"] == sub.latest_invoice.id and payment["status"] == "paid"
    assert payment["payment"] == {"type": "payment_intent", "payment_intent": intent(
        sdk, sub.latest_invoice).id}
    assert set(payment) <= set(versions.fields(versions.Version(paid[0]["api_version"]),
                                               "invoice_payment") or {})
    invoice = next(e for e in events if e["type"] == "invoice.paid")["data"]["object"]
    assert "payments" not in invoice
    assert invoice["parent"]["subscription_details"] == {
        "metadata": {"shop_subscription": "s-1"}, "subscription": sub.id}
    assert "subscription_details" in (versions.fields(
        versions.Version(paid[0]["api_version"]), "invoice") or {})["parent"]


def test_renewals_charge_each_period_and_a_failing_card_recovers(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    customer = card_customer(sdk)
    sub = sdk.v1.subscriptions.create(params={"customer": customer.id,
                                              "items": [{"price": plan(sdk).id}]})
    renew(emulator, sub)
    sub = sdk.v1.subscriptions.retrieve(sub.id)
    second = sdk.v1.invoices.retrieve(sub.latest_invoice)
    assert (sub.status, second.status, second.billing_reason) == ("active", "paid",
                                                                  "subscription_cycle")
    sdk.v1.subscriptions.update(sub.id, params={"default_payment_method":
                                                "pm_card_chargeCustomerFail"})
    start = seen(emulator)
    renew(emulator, sub)
    sub = sdk.v1.subscriptions.retrieve(sub.id)
    third = sdk.v1.invoices.retrieve(sub.latest_invoice)
    assert (sub.status, third.status, third.attempt_count) == ("past_due", "open", 1)
    assert third.next_payment_attempt == emulator.now() + CARD_RETRY_DAYS[0] * DAY
    assert {"invoice.payment_failed", "customer.subscription.updated"} <= \
        set(types_since(emulator, start))
    sdk.v1.subscriptions.update(sub.id, params={"default_payment_method": "pm_card_visa"})
    emulator.advance(CARD_RETRY_DAYS[0] * DAY)
    assert sdk.v1.invoices.retrieve(third.id).status == "paid"
    assert sdk.v1.subscriptions.retrieve(sub.id).status == "active"


def test_a_card_that_never_recovers_ends_the_subscription(sdk: stripe.StripeClient,
                                                          emulator: Emulator) -> None:
    customer = card_customer(sdk)
    sub = sdk.v1.subscriptions.create(params={"customer": customer.id,
                                              "items": [{"price": plan(sdk).id}]})
    sdk.v1.subscriptions.update(sub.id, params={"default_payment_method":
                                                "pm_card_chargeCustomerFail"})
    renew(emulator, sub)
    for days in CARD_RETRY_DAYS:
        assert sdk.v1.subscriptions.retrieve(sub.id).status == "past_due"
        emulator.advance(days * DAY)
    ended = sdk.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled" and ended.cancellation_details.reason == "payment_failed"
    assert emulator.events()[-1]["type"] == "customer.subscription.deleted"
    assert sdk.v1.invoices.retrieve(ended.latest_invoice).attempt_count == 4


def test_error_if_incomplete_refuses_a_declined_card_and_keeps_nothing(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    customer = card_customer(sdk, "pm_card_chargeCustomerFail")
    price = plan(sdk)
    before = len(emulator.events())
    with pytest.raises(stripe.CardError):
        sdk.v1.subscriptions.create(params={"customer": customer.id,
                                            "items": [{"price": price.id}],
                                            "payment_behavior": "error_if_incomplete"})
    assert len(emulator.events()) == before and not emulator.store.objects["subscription"]
    sub = sdk.v1.subscriptions.create(params={"customer": customer.id,
                                              "items": [{"price": price.id}]})
    assert sub.status == "incomplete"
    emulator.advance(23 * 3600)
    assert sdk.v1.subscriptions.retrieve(sub.id).status == "incomplete_expired"


def test_a_konbini_subscription_mails_a_voucher_per_invoice(sdk: stripe.StripeClient,
                                                            emulator: Emulator) -> None:
    sub = konbini_subscription(sdk)
    invoice = sub.latest_invoice
    assert sub.status == "active" and sub.collection_method == "send_invoice"
    assert invoice.status == "open" and invoice.due_date == invoice.created + 3 * DAY
    voucher = intent(sdk, invoice).next_action.konbini_display_details
    assert voucher.expires_at <= invoice.due_date
    assert httpx.get(voucher.hosted_voucher_url).status_code == 200
    assert "コンビニ" in httpx.get(invoice.hosted_invoice_url).text
    emulator.advance(180)  # test mode: an ordinary e-mail pays after three minutes
    assert sdk.v1.invoices.retrieve(invoice.id).status == "paid"
    renew(emulator, sub)
    second = sdk.v1.invoices.retrieve(sdk.v1.subscriptions.retrieve(sub.id).latest_invoice,
                                      params={"expand": ["payments"]})
    assert second.id != invoice.id and second.status in ("open", "paid")
    assert intent(sdk, second).payment_method_types == ["konbini"]


def test_an_unpaid_konbini_invoice_goes_past_due_then_ends_the_subscription(
        sdk: stripe.StripeClient, emulator: Emulator) -> None:
    sub = konbini_subscription(sdk, email="fill_never@test.com")
    invoice = sub.latest_invoice
    start = seen(emulator)
    emulator.advance(invoice.due_date - emulator.now())
    assert sdk.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert types_since(emulator, start) == ["payment_intent.payment_failed",
                                            "invoice.payment_failed", "invoice.overdue",
                                            "customer.subscription.updated"]
    emulator.advance(OVERDUE_CANCEL_AFTER)
    assert sdk.v1.subscriptions.retrieve(sub.id).status == "canceled"


@pytest.mark.parametrize("control, status", [("pay", "paid"), ("lapse", "open")])
def test_controls_pay_or_lapse_an_invoice(sdk: stripe.StripeClient, emulator: Emulator,
                                          http: httpx.Client, control: str,
                                          status: str) -> None:
    sub = konbini_subscription(sdk, email="fill_never@test.com")
    response = http.post(f"/_emulator/invoices/{sub.latest_invoice.id}/{control}",
                         data={"store": "lawson"} if control == "pay" else {})
    assert response.status_code == 200 and response.json()["status"] == status
    final = sdk.v1.subscriptions.retrieve(sub.id).status
    assert final == ("active" if control == "pay" else "canceled")
    again = http.post(f"/_emulator/invoices/{sub.latest_invoice.id}/pay")
    assert (again.status_code == 200) == (control == "lapse") or again.status_code == 400


def test_a_trial_bills_nothing_then_charges_at_its_end(sdk: stripe.StripeClient,
                                                       emulator: Emulator) -> None:
    customer = card_customer(sdk)
    sub = sdk.v1.subscriptions.create(params={"customer": customer.id, "trial_period_days": 7,
                                              "items": [{"price": plan(sdk).id}],
                                              "expand": ["latest_invoice"]})
    assert sub.status == "trialing" and sub.latest_invoice.amount_due == 0
    assert sub.latest_invoice.status == "paid" and sub.trial_end == period(sub).current_period_end
    emulator.advance(4 * DAY)
    assert emulator.events()[-1]["type"] == "customer.subscription.trial_will_end"
    renew(emulator, sub)
    sub = sdk.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and sub.latest_invoice.amount_paid == 980


def test_cancel_now_or_at_period_end(sdk: stripe.StripeClient, emulator: Emulator) -> None:
    customer = card_customer(sdk)
    price = plan(sdk, interval="week")  # a short period: its events stay within 30 days
    now = sdk.v1.subscriptions.create(params={"customer": customer.id,
                                              "items": [{"price": price.id}]})
    assert sdk.v1.subscriptions.cancel(now.id).status == "canceled"
    later = sdk.v1.subscriptions.create(params={"customer": customer.id,
                                                "items": [{"price": price.id}]})
    assert sdk.v1.subscriptions.update(later.id, params={"cancel_at_period_end": True}) \
        .cancel_at == period(later).current_period_end
    emulator.advance(period(later).current_period_end - emulator.now())
    assert sdk.v1.subscriptions.retrieve(later.id).status == "canceled"
    deleted = [e for e in emulator.events() if e["type"] == "customer.subscription.deleted"]
    assert [e["data"]["object"]["id"] for e in deleted] == [now.id, later.id]
    assert sdk.v1.subscriptions.list().data == []
    assert len(sdk.v1.subscriptions.list(params={"status": "all"}).data) == 2


@pytest.mark.parametrize("params, param", [
    ({"items": [{"price": "price_nope"}]}, "items[0][price]"),
    ({"collection_method": "send_invoice"}, "days_until_due"),
    ({"payment_settings": {"payment_method_types": ["konbini"]}},
     "payment_settings[payment_method_types]"),
    ({"items": [{"quantity": 10**20}]}, "items[0][quantity]"),
    ({"trial_period_days": -1}, "trial_period_days"),
])
def test_bad_subscriptions_are_refused_by_param(sdk: stripe.StripeClient, emulator: Emulator,
                                                params: dict[str, Any], param: str) -> None:
    customer = card_customer(sdk)
    price = plan(sdk)
    body: dict[str, Any] = {"customer": customer.id, "items": [{"price": price.id}]}
    for key, value in params.items():
        body[key] = [{"price": price.id, **value[0]}] if key == "items" else value
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.subscriptions.create(params=body)
    assert caught.value.param == param
    assert not emulator.store.objects["subscription"] and not emulator.store.objects["invoice"]


def test_prices_are_validated_and_listed(sdk: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.prices.create(params={"currency": "jpy", "unit_amount": 10**9,
                                     "product_data": {"name": "Too much"}})
    assert caught.value.code == "amount_too_large"
    price = plan(sdk, 9800, "year")
    assert price.recurring.interval == "year" and price.type == "recurring"
    assert [p.id for p in sdk.v1.prices.list(params={"product": price.product}).data] == \
        [price.id]


def test_billing_objects_and_events_match_stripes_schemas(sdk: stripe.StripeClient,
                                                          emulator: Emulator) -> None:
    customer = card_customer(sdk)
    sdk.v1.subscriptions.create(params={"customer": customer.id, "trial_period_days": 7,
                                        "items": [{"price": plan(sdk).id}]})
    konbini_subscription(sdk, email="fill_never@test.com")
    renew(emulator, sdk.v1.subscriptions.list().data[0])
    emulator.advance(40 * DAY - 1)  # renewals, overdue, cancellation; events stay < 30 days
    objects = emulator.store.objects
    for kind in ("customer", "product", "price", "subscription", "invoice"):
        assert objects[kind], f"no {kind} made"
    found = [p for kind in objects for obj in objects[kind].values() for p in problems(obj)]
    found += [p for event in emulator.events() for p in problems(event)]
    assert found == []
    assert {e["type"] for e in emulator.events()} <= event_types()


def test_one_long_jump_fires_each_renewal_at_its_own_time(sdk: stripe.StripeClient,
                                                          emulator: Emulator) -> None:
    customer = card_customer(sdk)
    sub = sdk.v1.subscriptions.create(params={"customer": customer.id,
                                              "items": [{"price": plan(sdk, interval="week").id}]})
    emulator.advance(3 * 7 * DAY + FINALIZE_AFTER)
    paid = [e for e in emulator.events() if e["type"] == "invoice.paid"]
    assert len(paid) == 4  # the first invoice and three renewals
    for renewal, event in zip(range(1, 4), paid[1:]):
        period_start = period(sub).current_period_start + renewal * 7 * DAY
        assert event["data"]["object"]["period_start"] == period_start
        assert event["created"] == period_start + FINALIZE_AFTER  # not at the jump's end
    assert period(sdk.v1.subscriptions.retrieve(sub.id)).current_period_start == \
        period(sub).current_period_start + 3 * 7 * DAY
