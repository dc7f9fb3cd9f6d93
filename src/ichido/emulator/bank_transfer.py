"""Bank transfers in Japan: a ``customer_balance`` PaymentIntent paid by furikomi (振込) into the
customer's virtual account, with the money landing on the customer's cash balance first.

Facts (docs.stripe.com/payments/bank-transfers/accept-a-payment, …/customer-balance,
…/customer-balance/reconciliation, …/customer-balance/refunding; read 2026-11): a Customer is
required; ``payment_method_options[customer_balance]`` takes ``funding_type=bank_transfer`` and
``bank_transfer[type]`` (one of ``eu_bank_transfer``, ``gb_bank_transfer``,
``jp_bank_transfer``, ``mx_bank_transfer``, ``us_bank_transfer``; yen needs
``jp_bank_transfer``; the spec lets the server take more than it lists, and Stripe's CLI sends
``jp_bank_account``, which is taken as ``jp_bank_transfer``: unconfirmed). Confirming answers ``requires_action`` with
``next_action.display_bank_transfer_instructions`` (``type: jp_bank_transfer``, ``currency``,
``amount_remaining``, ``reference``, ``hosted_instructions_url``, ``financial_addresses[]`` of
type ``zengin``); each customer has one virtual account. Money already on the cash balance is
applied at once. Transfers are reconciled automatically (``cash_balance``); the intent has no
expiry parameter and can be canceled while it waits. Refunds wait for the customer's bank
details, asked by e-mail, like konbini's; left unanswered for 45 days the refund is canceled
and the money goes back to the cash balance.

The emulator's choices, unconfirmed: the zengin details (a test bank, ``account_type``
``futsu``), the ``reference`` (six digits), the lapsed refund's ``refunded_from_payment``
transaction, and the charge fee: the pricing's ``customer_balance`` rule, once per payment.
Only ``jp_bank_transfer`` is implemented; the other types are refused as not implemented.
"""

from __future__ import annotations

from typing import Any, Callable

from ichido.emulator import forms, ledger, objects
from ichido.emulator.cash_balance import CashBalances
from ichido.emulator.errors import invalid, missing_param
from ichido.emulator.fees import Pricing
from ichido.emulator.refunds import Refunds
from ichido.emulator.state import Store, snapshot

TYPES = ("eu_bank_transfer", "gb_bank_transfer", "jp_bank_transfer", "mx_bank_transfer",
         "us_bank_transfer")
# What the CLI's ``payment_intent.partially_funded`` fixture sends (1.52): not in the documented
# enum, which the spec marks ``x-stripeBypassValidation``; taken as jp_bank_transfer.
ALIASES = {"jp_bank_account": "jp_bank_transfer"}
PREFIX = "payment_method_options[customer_balance]"
INSTRUCTIONS = "display_bank_transfer_instructions"
# The test bank of every virtual account here (a made-up zengin member: 振込先 for tests only).
BANK = {"bank_code": "0999", "bank_name": "テスト銀行", "branch_name": "ストライプ支店",
        "account_holder_name": "ｽﾄﾗｲﾌﾟｼﾞﾔﾊﾟﾝ(ｶ", "account_type": "futsu"}


def read_options(raw: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """``payment_method_options[customer_balance]`` as the intent shows it, ``raw`` over
    ``base``; values checked against Stripe's enums."""
    forms.check_known(raw, {"funding_type", "bank_transfer", "setup_future_usage"}, PREFIX)
    out = base or {"bank_transfer": None, "funding_type": None}  # setup_future_usage: if given
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
        kind = ALIASES.get(kind, kind)
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


class BankTransfers:
    """Intents paid by transfer into the cash balance: instructions, funding, success."""

    def __init__(self, store: Store, pricing: Pricing, cash: CashBalances, refunds: Refunds,
                 tell: Callable[[dict[str, Any], bool], None]) -> None:
        self.store, self.pricing, self.cash, self.tell = store, pricing, cash, tell
        self.accounts: dict[str, dict[str, Any]] = {}  # customer -> its virtual account
        cash.reconcilers.append(self.reconcile)
        refunds.lapses["customer_balance"] = self._refund_lapsed
        self.refunds = refunds

    def start(self, pi: dict[str, Any], pm: dict[str, Any], now: int) -> dict[str, Any]:
        """Confirming: the instructions, then whatever the cash balance already holds."""
        check_intent(pi)
        reference = objects.digits(6)
        pi.update(status="requires_action", last_payment_error=None, next_action={
            "type": INSTRUCTIONS, INSTRUCTIONS: {
                "amount_remaining": pi["amount"], "currency": pi["currency"],
                "financial_addresses": [{"supported_networks": ["zengin"], "type": "zengin",
                                         "zengin": self.account(pi["customer"])}],
                "hosted_instructions_url": f"{self.store.public_url}/_emulator/"
                                           f"bank_transfer_instructions/{pi['id']}",
                "reference": reference, "type": "jp_bank_transfer"}})
        if self.cash.available(pi["customer"], pi["currency"]) < pi["amount"]:
            self.store.emit("payment_intent.requires_action", pi)
        self._apply(pi)
        return pi

    def account(self, customer: str) -> dict[str, Any]:
        """The customer's one virtual account (the same for every payment)."""
        if customer not in self.accounts:
            self.accounts[customer] = {**BANK, "branch_code": objects.digits(3),
                                       "account_number": objects.digits(7)}
        return dict(self.accounts[customer])

    def reconcile(self, customer: str, currency: str, reference: str | None) -> None:
        """New money on the balance pays open intents: the one whose ``reference`` the
        transfer names, else the one owing exactly that much, else the oldest first."""
        waiting = [pi for pi in self.store.objects["payment_intent"].values()
                   if pi["customer"] == customer and pi["currency"] == currency
                   and pi["status"] == "requires_action"
                   and (pi["next_action"] or {}).get("type") == INSTRUCTIONS]
        available = self.cash.available(customer, currency)
        waiting.sort(key=lambda pi: (_instructions(pi)["reference"] != reference,
                                     _instructions(pi)["amount_remaining"] != available,
                                     pi["created"]))
        for pi in waiting:
            if self.cash.available(customer, currency) <= 0:
                break
            self._apply(self.store.get("payment_intent", pi["id"]))

    def _apply(self, pi: dict[str, Any]) -> None:
        """Move what the balance holds (up to what is owed) onto ``pi``."""
        remaining = _instructions(pi)["amount_remaining"]
        taken = min(remaining, self.cash.available(pi["customer"], pi["currency"]))
        if taken <= 0:
            return
        self.cash.record(pi["customer"], pi["currency"], -taken, "applied_to_payment",
                         {"payment_intent": pi["id"]})
        _instructions(pi)["amount_remaining"] = remaining - taken
        if remaining - taken > 0:
            self.store.emit("payment_intent.partially_funded", pi)
        else:
            self._succeed(pi)

    def _succeed(self, pi: dict[str, Any]) -> None:
        pm = self.store.get("payment_method", pi["payment_method"])
        ledger.intent_paid(self.store, self.pricing, pi, pm,
                           {"type": "customer_balance", "customer_balance": {}},
                           customer=pi["customer"])
        self.tell(pi, True)

    def _refund_lapsed(self, refund: dict[str, Any]) -> dict[str, Any]:
        """No bank details in time: the refund is canceled and the money goes to the
        customer's cash balance (not back to the merchant)."""
        before = snapshot(refund)
        refund.pop("next_action", None)
        refund["status"] = "canceled"
        self.store.emit_update("refund.updated", refund, before)
        self.store.emit_update("charge.refund.updated", refund, before)
        charge = self.store.get("charge", refund["charge"])
        self.cash.record(charge["customer"], refund["currency"], refund["amount"],
                         "refunded_from_payment", {"refund": refund["id"]})
        self.store.emit("cash_balance.funds_available", self.cash.balance(charge["customer"]))
        return refund

    def instructions_page(self, pi_id: str) -> str | None:
        """``hosted_instructions_url``: what to transfer, to where."""
        pi = self.store.objects["payment_intent"].get(pi_id)
        if pi is None or (pi["next_action"] or {}).get("type") != INSTRUCTIONS:
            return None
        shown = _instructions(pi)
        account = shown["financial_addresses"][0]["zengin"]
        rows = "".join(f"<tr><th>{key}</th><td>{value}</td></tr>"
                       for key, value in account.items())
        return (f"<!doctype html><meta charset=utf-8><title>お振込のご案内</title>"
                f"<h1>¥{shown['amount_remaining']:,}</h1><table>{rows}</table>")


def _instructions(pi: dict[str, Any]) -> dict[str, Any]:
    instructions: dict[str, Any] = pi["next_action"][INSTRUCTIONS]
    return instructions
