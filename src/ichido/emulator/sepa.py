"""SEPA Direct Debit: a delayed-notification method (what the CLI's ``payment_intent.processing``
and ``checkout.session.async_payment_*`` triggers use), in euros.

docs.stripe.com/payments/sepa-debit: confirming puts the PaymentIntent in ``processing``
with a ``pending`` charge (``charge.pending``, ``payment_intent.processing``); the bank's answer
comes later: ``charge.succeeded`` and ``payment_intent.succeeded``, or ``charge.failed`` and
``payment_intent.payment_failed``. Stripe's test IBANs (docs.stripe.com/testing#sepa-direct-debit)
pick the answer; any other well-formed IBAN succeeds. The fee is the pricing's card rule: the
pricing format names only the methods of a Japanese account (``fees.METHODS``).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ichido.emulator import forms, ledger, objects
from ichido.emulator.errors import invalid
from ichido.emulator.fees import Pricing
from ichido.emulator.state import Store

# IBAN: (outcome, seconds until the bank answers)
TEST_IBANS = {"AT611904300234573201": ("succeed", 0), "AT321904300235473204": ("succeed", 180),
              "AT861904300235473202": ("fail", 0), "AT051904300235473205": ("fail", 180),
              "DE89370400440532013000": ("succeed", 0), "DE62370400440532013001": ("fail", 0),
              "IT40S0542811101000000123456": ("succeed", 0),
              "IT60X0542811101000000123456": ("fail", 0)}
IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def method_details(params: dict[str, Any]) -> dict[str, Any]:
    """``sepa_debit[iban]`` of a PaymentMethod create, as the PaymentMethod shows it."""
    raw = forms.mapping(params, "sepa_debit")
    forms.check_known(raw, {"iban"}, "sepa_debit")
    iban = (forms.text(raw, "iban", required=True, param="sepa_debit[iban]") or "")
    iban = iban.replace(" ", "").upper()
    if not IBAN.fullmatch(iban):
        raise invalid("The IBAN you provided appears to be invalid.", param="sepa_debit[iban]",
                      code="invalid_bank_account_iban")
    billing = forms.mapping(params, "billing_details")
    for field in ("name", "email"):  # a SEPA mandate needs both
        forms.text(billing, field, required=True, param=f"billing_details[{field}]")
    return {"bank_code": iban[4:9], "branch_code": "", "country": iban[:2],
            "fingerprint": f"emusepa{iban[-6:]}", "generated_from": {
                "charge": None, "setup_attempt": None}, "last4": iban[-4:]}


class Sepa:
    def __init__(self, store: Store, pricing: Pricing,
                 tell: Callable[[dict[str, Any], bool], None]) -> None:
        self.store, self.pricing, self.tell = store, pricing, tell
        store.due_actions.update(sepa_answer=self._due_answer)

    def debit(self, pi: dict[str, Any], pm: dict[str, Any], now: int) -> dict[str, Any]:
        if pi["currency"] != "eur":
            raise invalid("SEPA Direct Debit takes eur only.", param="currency",
                          code="payment_intent_invalid_parameter")
        details = {"type": "sepa_debit", "sepa_debit": {
            k: pm["sepa_debit"][k] for k in ("bank_code", "branch_code", "country",
                                              "fingerprint", "last4")} | {
            "mandate": objects.new_id("mandate")}}
        charge = self.store.add(objects.charge(pi, pm, now, status="pending", details=details,
                                               outcome=objects.outcome("authorized"),
                                               customer=pi["customer"]))
        charge.update(paid=False, captured=True, amount_captured=pi["amount"])
        pi.update(status="processing", latest_charge=charge["id"], next_action=None,
                  last_payment_error=None, processing=None)
        self.store.emit("charge.pending", charge)
        self.store.emit("payment_intent.processing", pi)
        iban_outcome = TEST_IBANS.get(self._iban(pm), ("succeed", 0))
        self.store.schedule(now + iban_outcome[1], "sepa_answer", pi["id"], iban_outcome[0])
        return pi

    def _iban(self, pm: dict[str, Any]) -> str:
        return self.store.private.get(pm["id"], {}).get("iban", "")

    def _due_answer(self, pi_id: str, outcome: str) -> None:
        pi = self.store.get("payment_intent", pi_id)
        if pi["status"] != "processing":
            return
        charge = self.store.get("charge", pi["latest_charge"])
        if outcome == "succeed":
            ledger.charge_transaction(self.store, charge, "card", self.pricing)
            charge.update(status="succeeded", paid=True)
            pi.update(status="succeeded", amount_received=pi["amount"])
            self.store.emit("charge.succeeded", charge)
            self.store.emit("payment_intent.succeeded", pi)
            self.tell(pi, True)
            return
        pm = self.store.get("payment_method", pi["payment_method"])
        error = invalid("The customer's bank account has insufficient funds.",
                        code="insufficient_funds", payment_method=pm,
                        payment_method_type="sepa_debit")
        charge.update(status="failed", captured=False, amount_captured=0,
                      failure_code="insufficient_funds",
                      failure_message="The customer's account has insufficient funds.")
        pi.update(status="requires_payment_method", payment_method=None,
                  last_payment_error=error.payload())
        self.store.emit("charge.failed", charge)
        self.store.emit("payment_intent.payment_failed", pi)
        self.tell(pi, False)
