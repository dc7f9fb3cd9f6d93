"""PaymentMethods through the API: create, update, detach, list (attach is the catalog's).

``POST /v1/payment_methods`` makes a card from a test token (``card[token]=tok_visa``, as the
CLI's Checkout fixtures send; raw card numbers are refused as Stripe refuses them by default) or
a konbini method from ``billing_details``. ``POST /v1/payment_methods/{id}`` changes
``metadata``, ``billing_details`` or ``allow_redisplay`` (``payment_method.updated``); ``detach``
takes it off its customer (``payment_method.detached``). Other types (``sepa_debit``...) are
refused with a clear error: the local Stripe pays by card, konbini and SEPA Direct Debit
(``sepa_debit[iban]``, see ``sepa``) only.
Parameters: ``versions`` refuses what the request's API version lacks; the handlers refuse what
they do not model.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import forms, methods, objects, reading, sepa
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, snapshot
from ichido.emulator.test_cards import TEST_CARDS

TYPES = ("card", "konbini", "sepa_debit")
REDISPLAY = ("always", "limited", "unspecified")


class PaymentMethods:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"type", "card", "konbini", "sepa_debit", "billing_details",
                                   "metadata", "customer", "expand"})
        pm_type = forms.text(params, "type", required=True) or ""
        if pm_type not in TYPES:
            raise invalid(f"The local Stripe creates PaymentMethods of type "
                          f"{' or '.join(TYPES)}; {pm_type[:40]} is not supported.",
                          param="type", code="payment_method_not_available")
        billing = forms.mapping(params, "billing_details")
        now = self.store.clock.now()
        if pm_type == "sepa_debit":
            details = sepa.method_details(params)
            pm = self.store.add(objects.payment_method("sepa_debit", now, billing=billing))
            pm["sepa_debit"] = details
            iban = forms.mapping(params, "sepa_debit")["iban"].replace(" ", "").upper()
            self.store.private[pm["id"]] = {"iban": iban}
        elif pm_type == "konbini":
            pm = methods.resolve(self.store, {"payment_method_data": {
                "type": "konbini", "billing_details": billing,
                "metadata": params.get("metadata", {})}}, now)
            assert pm is not None
        else:
            card = forms.mapping(params, "card")
            forms.check_known(card, {"token"}, "card")  # numbers: Stripe's default refuses
            token = forms.text(card, "token", required=True, param="card[token]") or ""
            if token not in TEST_CARDS or not token.startswith("tok_"):
                raise invalid(f"No such token: '{token[:40]}'", param="card[token]",
                              code="resource_missing")
            pm = methods.test_card(self.store, token, now, billing)
        pm["metadata"] = forms.metadata(params)
        customer_id = forms.text(params, "customer")
        if customer_id:
            self.store.get("customer", customer_id, "customer")
            pm["customer"] = customer_id
        return pm

    def update(self, pm_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"metadata", "billing_details", "allow_redisplay", "expand"})
        pm = self.store.get("payment_method", pm_id, "payment_method")
        before = snapshot(pm)
        if "metadata" in params:
            merged = {**pm["metadata"], **forms.metadata(params)}
            pm["metadata"] = {k: v for k, v in merged.items() if v != ""}
        if "billing_details" in params:
            given = forms.mapping(params, "billing_details")
            forms.check_known(given, {"address", "email", "name", "phone", "tax_id"},
                              "billing_details")
            current = pm["billing_details"]
            pm["billing_details"] = objects.billing_details(
                {**current, **given, "address": {**current["address"],
                                                 **forms.mapping(given, "address")}})
        if "allow_redisplay" in params:
            value = forms.text(params, "allow_redisplay")
            if value not in REDISPLAY:
                raise invalid(f"Invalid allow_redisplay: must be one of {', '.join(REDISPLAY)}",
                              param="allow_redisplay")
            pm["allow_redisplay"] = value
        if pm != before:
            self.store.emit_update("payment_method.updated", pm, before)
        return pm

    def detach(self, pm_id: str, params: dict[str, Any]) -> dict[str, Any]:
        pm = self.store.get("payment_method", pm_id, "payment_method")
        if pm["customer"] is None:
            raise invalid("The payment method you provided is not attached to a customer so "
                          "detachment is impossible.", param="payment_method")
        before = snapshot(pm)
        customer = self.store.get("customer", pm["customer"], "customer") \
            if pm["customer"] in self.store.objects["customer"] else None
        if customer and customer["invoice_settings"]["default_payment_method"] == pm_id:
            customer["invoice_settings"]["default_payment_method"] = None
        pm["customer"] = None
        self.store.emit_update("payment_method.detached", pm, before)
        return pm

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return reading.listing(self.store, "payment_method", "/v1/payment_methods",
                               "customer", "type", "allow_redisplay")(params)
