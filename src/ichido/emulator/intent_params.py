"""A PaymentIntent's method parameters: which methods it takes, and ``payment_method_options``.

Card, konbini, SEPA Direct Debit (eur; see ``sepa``), PayPay (``paypay``: yen, no manual capture,
no ``setup_future_usage``) and bank transfers into the cash balance (``customer_balance``; see
``bank_transfer``) exist here;
``automatic_payment_methods[enabled]`` means card and konbini for yen.
Which methods, by API version (``versions`` refuses what a version lacks before this runs):
``payment_method_types[]`` up to ``2026-08-26.dahlia``; since ``2026-07-29.dahlia`` also
``allowed_payment_method_types[]`` (incompatible methods are dropped silently, as Stripe does:
konbini without yen or outside its amounts) or ``excluded_payment_method_types[]`` (taken from
the automatic set); these two exclude each other, ``automatic_payment_methods`` and
``payment_method_configuration`` (docs.stripe.com/changelog/dahlia/2026-07-29/
allowed-payment-method-types-parameter). Since ``2026-09-30.endive`` only the latter two.
The answer's ``payment_method_types`` is the resolved list in every version.
Card options are Stripe's defaults; konbini options are read and checked by ``konbini``.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import bank_transfer, forms, konbini, paypay
from ichido.emulator.errors import StripeError, invalid


EXCLUSIVE = ("allowed_payment_method_types", "excluded_payment_method_types",
             "automatic_payment_methods", "payment_method_configuration")
KNOWN = ("card", "konbini", "sepa_debit", "paypay", "customer_balance")


def types(params: dict[str, Any], amount: int, currency: str) -> tuple[list[str], bool]:
    """The resolved ``payment_method_types`` and whether automatic payment methods chose
    them."""
    given = [name for name in EXCLUSIVE if params.get(name) not in (None, "")]
    if len(given) > 1 and given[0] in EXCLUSIVE[:2]:
        raise invalid(f"You may only specify one of these parameters: {', '.join(given)}.",
                      param=given[1])
    allowed = forms.strings(params, "allowed_payment_method_types")
    excluded = forms.strings(params, "excluded_payment_method_types")
    if allowed or excluded:
        automatic = ["card", "konbini"] if currency == "jpy" else ["card"]
        chosen = [kind for kind in (allowed or automatic) if kind not in excluded
                  and _compatible(kind, amount, currency)
                  and not (kind == "paypay" and paypay.refusal(amount, currency, params))]
        for kind in [] if chosen else allowed:  # say why the method asked for cannot pay
            if kind == "konbini":
                konbini.check_amount(amount, currency)
            if kind == "paypay" and (error := paypay.refusal(amount, currency, params)):
                raise error
        if not chosen:
            raise invalid("None of the payment method types given can take this payment "
                          f"({amount} {currency}).", param=given[0],
                          code="payment_intent_invalid_parameter")
        return chosen, False
    chosen = forms.strings(params, "payment_method_types")
    auto = forms.mapping(params, "automatic_payment_methods").get("enabled") == "true"
    if not chosen:
        chosen = ["card", "konbini"] if auto and currency == "jpy" else ["card"]
    for pm_type in chosen:
        if pm_type not in ("card", "konbini", "sepa_debit", "customer_balance"):
            raise invalid(f"The payment method type provided: {pm_type} is invalid.",
                          param="payment_method_types",
                          code="payment_intent_invalid_parameter")
    if chosen == ["konbini"]:
        konbini.check_amount(amount, currency)
    return chosen, auto


def _compatible(kind: str, amount: int, currency: str) -> bool:
    if kind not in KNOWN or (kind == "sepa_debit" and currency != "eur"):
        return False
    if kind == "konbini":
        try:
            konbini.check_amount(amount, currency)
        except StripeError:
            return False
    return True


def options(kinds: list[str], params: dict[str, Any], now: int,
            base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``payment_method_options``: ``base`` (or the defaults) with what ``params`` sets."""
    raw = forms.mapping(params, "payment_method_options")
    forms.check_known(raw, set(kinds), "payment_method_options")
    out: dict[str, Any] = base if base is not None else {}
    if "card" in kinds:
        out.setdefault("card", {"installments": None, "mandate_options": None,
                                "network": None, "request_three_d_secure": "automatic"})
    if "sepa_debit" in kinds:
        out.setdefault("sepa_debit", {})
    if "paypay" in kinds:
        forms.check_known(forms.mapping(raw, "paypay", "payment_method_options[paypay]"), set(),
                          "payment_method_options[paypay]")
        out.setdefault("paypay", {})
    if "customer_balance" in kinds:
        out["customer_balance"] = bank_transfer.read_options(
            forms.mapping(raw, "customer_balance", "payment_method_options[customer_balance]"),
            out.get("customer_balance"))
    if "konbini" in kinds:
        given = forms.mapping(raw, "konbini", "payment_method_options[konbini]")
        out.setdefault("konbini", konbini.empty_options())
        out["konbini"].update(konbini.read_options(given, now))
    return out
