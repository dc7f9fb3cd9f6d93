"""Bank transfers in Japan through the official SDK: instructions, partial and full funding,
excess kept on the cash balance, refunds that wait for bank details (issue 24, item 2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from ichido.emulator import Emulator
from ichido.emulator.refunds import BANK_DETAILS_TTL
from tests.emulator.schemas import problems, require_reference

FUNDING = {"customer_balance": {"funding_type": "bank_transfer",
                                "bank_transfer": {"type": "jp_bank_transfer"}}}


def transfer_params(customer: str, amount: int = 10000, **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "currency": "jpy", "customer": customer,
            "allowed_payment_method_types": ["customer_balance"],
            "payment_method_data": {"type": "customer_balance"},
            "payment_method_options": FUNDING, "confirm": True, **extra}


def types(emulator: Emulator, since: int = 0) -> list[str]:
    return [e["type"] for e in emulator.events()[since:]]


def remaining(pi: Any) -> int:
    return int(pi.next_action.display_bank_transfer_instructions.amount_remaining)


@pytest.fixture
def customer(sdk: stripe.StripeClient) -> str:
    return sdk.v1.customers.create(params={"email": "hanako@test.com", "name": "Hanako"}).id


def test_instructions_name_the_customers_one_virtual_account(
        sdk: stripe.StripeClient, emulator: Emulator, customer: str) -> None:
    require_reference()
    pi = sdk.v1.payment_intents.create(params=transfer_params(customer))
    assert pi.status == "requires_action"
    action = pi.next_action
    assert action is not None and action.type == "display_bank_transfer_instructions"
    shown = action.display_bank_transfer_instructions
    assert shown is not None
    assert (shown.type, shown.currency, shown.amount_remaining) == ("jp_bank_transfer", "jpy",
                                                                     10000)
    assert shown.reference and shown.hosted_instructions_url
    address = shown.financial_addresses[0]
    assert address.type == "zengin" and address.zengin is not None
    zengin = address.zengin
    assert zengin.account_type == "futsu" and zengin.bank_code and zengin.branch_code
    assert zengin.account_number and zengin.account_holder_name
    again = sdk.v1.payment_intents.create(params=transfer_params(customer, 500))
    other = sdk.v1.customers.create(params={"email": "jiro@test.com"}).id
    theirs = sdk.v1.payment_intents.create(params=transfer_params(other, 500))
    number = zengin.account_number
    assert again.next_action.display_bank_transfer_instructions.financial_addresses[0] \
        .zengin.account_number == number
    assert theirs.next_action.display_bank_transfer_instructions.financial_addresses[0] \
        .zengin.account_number != number
    page = httpx.get(str(shown.hosted_instructions_url))
    assert page.status_code == 200 and str(number) in page.text
    assert "payment_intent.requires_action" in types(emulator)
    assert [p for e in emulator.events() for p in problems(e)] == []


def test_partial_funding_then_full_funding(sdk: stripe.StripeClient, emulator: Emulator,
                                           customer: str) -> None:
    require_reference()
    pi = sdk.v1.payment_intents.create(params=transfer_params(customer))
    seen = len(emulator.events())
    funded = sdk.v1.test_helpers.customers.fund_cash_balance(
        customer, params={"amount": 4000, "currency": "jpy"})
    assert (funded.type, funded.net_amount, funded.ending_balance) == ("funded", 4000, 4000)
    assert funded.funded is not None
    assert funded.funded.bank_transfer.type == "jp_bank_transfer"
    assert types(emulator, seen) == ["customer_cash_balance_transaction.created",
                                     "customer_cash_balance_transaction.created",
                                     "payment_intent.partially_funded"]
    partly = sdk.v1.payment_intents.retrieve(pi.id)
    assert partly.status == "requires_action" and remaining(partly) == 6000
    applied = emulator.events()[seen + 1]["data"]["object"]
    assert (applied["type"], applied["net_amount"], applied["ending_balance"]) == (
        "applied_to_payment", -4000, 0)
    assert applied["applied_to_payment"] == {"payment_intent": pi.id}
    seen = len(emulator.events())
    sdk.v1.test_helpers.customers.fund_cash_balance(customer, params={"amount": 6000,
                                                                      "currency": "jpy"})
    assert types(emulator, seen) == ["customer_cash_balance_transaction.created",
                                     "customer_cash_balance_transaction.created",
                                     "charge.succeeded", "payment_intent.succeeded"]
    paid = sdk.v1.payment_intents.retrieve(pi.id)
    assert paid.status == "succeeded" and paid.amount_received == 10000
    charge = sdk.v1.charges.retrieve(str(paid.latest_charge))
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.type == "customer_balance"
    assert sdk.v1.customers.cash_balance.retrieve(customer).to_dict()["available"] == {"jpy": 0}
    assert [p for e in emulator.events() for p in problems(e)] == []


def test_excess_stays_on_the_cash_balance_and_pays_the_next_order(
        sdk: stripe.StripeClient, emulator: Emulator, customer: str) -> None:
    require_reference()
    pi = sdk.v1.payment_intents.create(params=transfer_params(customer))
    seen = len(emulator.events())
    sdk.v1.test_helpers.customers.fund_cash_balance(customer, params={
        "amount": 15000, "currency": "jpy"})
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "succeeded"
    assert types(emulator, seen)[-1] == "cash_balance.funds_available"
    balance = sdk.v1.customers.cash_balance.retrieve(customer)
    assert balance.to_dict()["available"] == {"jpy": 5000}
    assert balance.settings.reconciliation_mode == "automatic"
    listed = sdk.v1.customers.cash_balance_transactions.list(customer)
    assert [(t.type, t.net_amount, t.ending_balance) for t in listed.data] == [
        ("applied_to_payment", -10000, 5000), ("funded", 15000, 15000)]
    one = sdk.v1.customers.cash_balance_transactions.retrieve(customer, listed.data[0].id)
    assert one.id == listed.data[0].id
    seen = len(emulator.events())
    next_order = sdk.v1.payment_intents.create(params=transfer_params(customer, 3000))
    assert next_order.status == "succeeded"  # paid from the balance at once
    assert "payment_intent.requires_action" not in types(emulator, seen)
    assert sdk.v1.customers.cash_balance.retrieve(customer).to_dict()["available"] == {"jpy": 2000}
    events = emulator.events()
    assert [p for e in events for p in problems(e)] == []


def test_a_refund_waits_for_bank_details_or_returns_to_the_cash_balance(
        sdk: stripe.StripeClient, http: httpx.Client, emulator: Emulator,
        customer: str) -> None:
    require_reference()
    pi = sdk.v1.payment_intents.create(params=transfer_params(customer))
    sdk.v1.test_helpers.customers.fund_cash_balance(customer, params={"amount": 10000,
                                                                      "currency": "jpy"})
    refund = sdk.v1.refunds.create(params={"payment_intent": pi.id, "amount": 3000})
    assert refund.status == "requires_action"
    assert refund.next_action is not None and refund.next_action.display_details is not None
    assert refund.next_action.display_details.email_sent.email_sent_to == "hanako@test.com"
    assert http.post(f"/_emulator/refunds/{refund.id}/bank_details").status_code == 200
    emulator.settle()
    assert sdk.v1.refunds.retrieve(refund.id).status == "succeeded"
    lapsing = sdk.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2000})
    assert lapsing.status == "requires_action"
    emulator.advance(BANK_DETAILS_TTL)
    assert sdk.v1.refunds.retrieve(lapsing.id).status == "canceled"
    assert types(emulator)[-4:] == ["refund.updated", "charge.refund.updated",
                                     "customer_cash_balance_transaction.created",
                                     "cash_balance.funds_available"]
    assert sdk.v1.customers.cash_balance.retrieve(customer).to_dict()["available"] == {"jpy": 2000}
    back = sdk.v1.customers.cash_balance_transactions.list(customer).data[0]
    assert back.type == "refunded_from_payment" and back.refunded_from_payment is not None
    assert back.refunded_from_payment.refund == lapsing.id
    objects = emulator.store.objects
    assert [p for kind in ("refund", "charge", "customer_cash_balance_transaction")
            for obj in objects[kind].values() for p in problems(obj)] == []


@pytest.mark.parametrize(("change", "param", "code"), [
    ({"customer": None}, "customer", "payment_intent_invalid_parameter"),
    ({"currency": "usd"}, "currency", "payment_intent_invalid_parameter"),
    ({"payment_method_options": {"customer_balance": {"funding_type": "bank_transfer"}}},
     "payment_method_options[customer_balance][bank_transfer][type]", "parameter_missing"),
    ({"payment_method_options": {"customer_balance": {
        "funding_type": "bank_transfer", "bank_transfer": {"type": "jp_bank_furikomi"}}}},
     "payment_method_options[customer_balance][bank_transfer][type]", None),
])
def test_what_a_bank_transfer_needs_is_refused_when_missing(
        sdk: stripe.StripeClient, emulator: Emulator, customer: str, change: dict[str, Any],
        param: str, code: str | None) -> None:
    params = {k: v for k, v in (transfer_params(customer) | change).items() if v is not None}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.create(params=params)
    assert refused.value.param == param and refused.value.code == code
    assert sdk.v1.payment_intents.list().data == []


def test_the_clis_older_version_sends_payment_method_types(http: httpx.Client) -> None:
    """``payment_method_types[]=customer_balance`` (what the CLI's fixtures send, to basil)."""
    customer = http.post("/v1/customers", data={"email": "a@test.com"}).json()["id"]
    answer = http.post("/v1/payment_intents", headers={"Stripe-Version": "2025-08-27.basil"},
                       data={"amount": "20000", "currency": "jpy", "customer": customer,
                             "payment_method_types[]": "customer_balance",
                             "payment_method_data[type]": "customer_balance",
                             "payment_method_options[customer_balance][funding_type]":
                                 "bank_transfer",
                             "payment_method_options[customer_balance][bank_transfer][type]":
                                 "jp_bank_transfer", "confirm": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_action"]["type"] == "display_bank_transfer_instructions"
