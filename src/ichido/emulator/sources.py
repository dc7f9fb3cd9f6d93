"""A customer's card sources (``source=tok_visa``): the older Sources/Cards API the CLI's
fixtures still use for customers (``customer.source.created``, subscription schedules).

``source`` on a customer create/update, or ``POST /v1/customers/{id}/sources``, turns a test
token into a ``card_…`` on the customer (``customer.source.created``); the first one becomes
``default_source``. ``POST /v1/customers/{id}/sources/{card}`` changes its metadata or name
(``customer.source.updated``). As on Stripe, a ``card_…`` id works wherever a PaymentMethod
id does (subscriptions and invoices charge the default source when there is no default
PaymentMethod): the emulator keeps a card PaymentMethod under the same id.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import forms, methods, objects
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, snapshot
from ichido.emulator.test_cards import TEST_CARDS

UPDATE_KEYS = ("metadata", "name", "exp_month", "exp_year")


class Sources:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_customer(self, cust: dict[str, Any], params: dict[str, Any]) -> None:
        """The catalog's customer hook: ``source`` on create or update."""
        if forms.text(params, "source"):
            self._add(cust, forms.text(params, "source") or "")

    def create(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"source", "metadata", "expand"})
        cust = self.store.get("customer", customer_id, "customer")
        card = self._add(cust, forms.text(params, "source", required=True) or "")
        card["metadata"] = forms.metadata(params)
        return card

    def update(self, customer_id: str, card_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {*UPDATE_KEYS, "expand"})
        card = self.store.get("card", card_id, "id")
        if card["customer"] != customer_id:
            raise invalid(f"Customer {customer_id} does not have card with ID {card_id}",
                          param="id", code="resource_missing", status=404)
        before = snapshot(card)
        if "metadata" in params:
            merged = {**card["metadata"], **forms.metadata(params)}
            card["metadata"] = {k: v for k, v in merged.items() if v != ""}
        if "name" in params:
            card["name"] = forms.text(params, "name")
        for name in ("exp_month", "exp_year"):
            if name in params:
                card[name] = forms.integer(params, name)
        if card != before:
            self.store.emit_update("customer.source.updated", card, before)
        return card

    def _add(self, cust: dict[str, Any], token: str) -> dict[str, Any]:
        if not token.startswith("tok_") or token not in TEST_CARDS:
            raise invalid(f"No such token: '{token[:40]}'", param="source",
                          code="resource_missing")
        test = TEST_CARDS[token]
        now = self.store.clock.now()
        card_id = objects.new_id("card")
        pm = methods.test_card(self.store, token, now, pm_id=card_id)
        pm["customer"] = cust["id"]
        card = self.store.add({
            "id": card_id, "object": "card", "address_city": None, "address_country": None,
            "address_line1": None, "address_line1_check": None, "address_line2": None,
            "address_state": None, "address_zip": None, "address_zip_check": None,
            "brand": pm["card"]["display_brand"].title(), "country": "US",
            "customer": cust["id"], "cvc_check": "pass", "dynamic_last4": None,
            "exp_month": 12, "exp_year": 2034, "fingerprint": pm["card"]["fingerprint"],
            "funding": test.funding, "last4": test.last4, "metadata": {}, "name": None,
            "tokenization_method": None, "wallet": None})
        if cust["default_source"] is None:
            cust["default_source"] = card_id
        self.store.emit("customer.source.created", card)
        return card
