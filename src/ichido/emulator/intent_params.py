"""A PaymentIntent's method parameters: ``payment_method_types`` and ``payment_method_options``.

Card, konbini and SEPA Direct Debit (eur; see ``sepa``) exist here;
``automatic_payment_methods[enabled]`` means card and konbini for yen.
Card options are Stripe's defaults; konbini options are read and checked by ``konbini``.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import forms, konbini
from ichido.emulator.errors import invalid


def types(params: dict[str, Any], amount: int, currency: str) -> tuple[list[str], bool]:
    """``payment_method_types`` and whether automatic payment methods chose them."""
    chosen = forms.strings(params, "payment_method_types")
    auto = forms.mapping(params, "automatic_payment_methods").get("enabled") == "true"
    if not chosen:
        chosen = ["card", "konbini"] if auto and currency == "jpy" else ["card"]
    for pm_type in chosen:
        if pm_type not in ("card", "konbini", "sepa_debit"):
            raise invalid(f"The payment method type provided: {pm_type} is invalid.",
                          param="payment_method_types",
                          code="payment_intent_invalid_parameter")
    if chosen == ["konbini"]:
        konbini.check_amount(amount, currency)
    return chosen, auto


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
    if "konbini" in kinds:
        given = forms.mapping(raw, "konbini", "payment_method_options[konbini]")
        out.setdefault("konbini", konbini.empty_options())
        out["konbini"].update(konbini.read_options(given, now))
    return out
