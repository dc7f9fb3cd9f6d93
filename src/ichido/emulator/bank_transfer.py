"""Bank transfers in Japan: a ``customer_balance`` PaymentIntent paid by furikomi (振込) into the
customer's virtual account, with the money landing on the customer's cash balance first.

Facts (docs.stripe.com/payments/bank-transfers/accept-a-payment, …/customer-balance,
…/customer-balance/reconciliation, …/customer-balance/refunding; read 2026-11): a Customer is
required; ``payment_method_options[customer_balance]`` takes ``funding_type=bank_transfer`` and
``bank_transfer[type]`` (one of ``eu_bank_transfer``, ``gb_bank_transfer``,
``jp_bank_transfer``, ``mx_bank_transfer``, ``us_bank_transfer``; yen needs
``jp_bank_transfer``). Confirming answers ``requires_action`` with
``next_action.display_bank_transfer_instructions`` (``type: jp_bank_transfer``, ``currency``,
``amount_remaining``, ``reference``, ``hosted_instructions_url``, ``financial_addresses[]`` of
type ``zengin``); each customer has one virtual account. Money already on the cash balance is
applied at once. Transfers are reconciled automatically (``cash_balance``); the intent has no
expiry parameter and can be canceled while it waits. Refunds wait for the customer's bank
details, asked by e-mail, like konbini's; left unanswered for 45 days the refund is canceled
and the money goes back to the cash balance.

The emulator's choices, unconfirmed: the zengin details (a test bank, ``account_type``
``futsu``), the ``reference`` (six digits), the lapsed refund's ``refunded_from_payment``
transaction, and the charge fee (the pricing's ``customer_balance`` rule, else its card rule).
Only ``jp_bank_transfer`` is implemented; the other types are refused as not implemented.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import forms
from ichido.emulator.errors import invalid, missing_param

TYPES = ("eu_bank_transfer", "gb_bank_transfer", "jp_bank_transfer", "mx_bank_transfer",
         "us_bank_transfer")
PREFIX = "payment_method_options[customer_balance]"


def read_options(raw: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """``payment_method_options[customer_balance]`` as the intent shows it, ``raw`` over
    ``base``; values checked against Stripe's enums."""
    forms.check_known(raw, {"funding_type", "bank_transfer", "setup_future_usage"}, PREFIX)
    out = base or {"bank_transfer": None, "funding_type": None, "setup_future_usage": None}
    funding = forms.text(raw, "funding_type")
    if funding is not None:
        if funding != "bank_transfer":
            raise invalid(f"Invalid {PREFIX}[funding_type]: must be bank_transfer",
                          param=f"{PREFIX}[funding_type]")
        out["funding_type"] = funding
    if "bank_transfer" in raw:
        where = f"{PREFIX}[bank_transfer]"
        transfer = forms.mapping(raw, "bank_transfer", where)
        forms.check_known(transfer, {"type", "requested_address_types", "eu_bank_transfer"},
                          where)
        kind = forms.text(transfer, "type", required=True, param=f"{where}[type]") or ""
        if kind not in TYPES:
            raise invalid(f"Invalid {where}[type]: must be one of {', '.join(TYPES)}",
                          param=f"{where}[type]")
        if kind != "jp_bank_transfer":
            raise invalid(f"This local Stripe implements jp_bank_transfer only, not {kind}.",
                          param=f"{where}[type]", code="emulator_parameter_unsupported")
        addresses = forms.strings(transfer, "requested_address_types") or ["zengin"]
        if addresses != ["zengin"]:
            raise invalid(f"Invalid {where}[requested_address_types]: jp_bank_transfer takes "
                          "zengin", param=f"{where}[requested_address_types]")
        out["bank_transfer"] = {"requested_address_types": addresses, "type": kind}
    if "setup_future_usage" in raw:
        usage = forms.text(raw, "setup_future_usage")
        if usage not in ("none", ""):
            raise invalid(f"Invalid {PREFIX}[setup_future_usage]: must be none",
                          param=f"{PREFIX}[setup_future_usage]")
        out["setup_future_usage"] = "none"
    return out


def check_intent(pi: dict[str, Any]) -> None:
    """What confirming a bank transfer needs: a customer, yen, the funding options."""
    if not pi["customer"]:
        raise invalid("A customer is required to use the customer_balance payment method: its "
                      "cash balance receives the transfer.", param="customer",
                      code="payment_intent_invalid_parameter")
    options = pi["payment_method_options"].get("customer_balance") or {}
    if options.get("funding_type") != "bank_transfer":
        raise missing_param(f"{PREFIX}[funding_type]")
    if not options.get("bank_transfer"):
        raise missing_param(f"{PREFIX}[bank_transfer][type]")
    if pi["currency"] != "jpy":
        raise invalid(f"The currency provided ({pi['currency']}) is invalid for "
                      "jp_bank_transfer, which takes jpy.", param="currency",
                      code="payment_intent_invalid_parameter")
    if pi["capture_method"] == "manual":
        raise invalid("customer_balance does not support manual capture.",
                      param="capture_method", code="payment_intent_invalid_parameter")
