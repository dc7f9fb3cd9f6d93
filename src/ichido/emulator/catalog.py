"""Customers, Products and Prices (one-time and recurring): what Billing and Checkout sell to.

Customers keep a default payment method (``invoice_settings[default_payment_method]``, or
``payment_method`` on create, which attaches it): a card subscription charges it on each
renewal. Test card names (``pm_card_visa``, ``pm_card_chargeCustomerFail``) work as on Stripe.
Prices: ``unit_amount`` (whole yen for jpy), ``recurring[interval]`` day|week|month|year with
``recurring[interval_count]``; ``product`` or ``product_data[name]``.
"""

from __future__ import annotations

from typing import Any, Callable

from ichido.emulator import billing_objects, forms, methods
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, snapshot

CUSTOMER_KEYS = {"email", "name", "metadata", "payment_method", "invoice_settings",
                 "description", "phone", "preferred_locales", "expand",
                 # for the hooks (catalog_edits, sources): what Stripe's CLI fixtures send
                 "source", "test_clock"}
PRODUCT_KEYS = {"name", "description", "metadata", "active", "expand"}
PRICE_KEYS = {"currency", "unit_amount", "product", "product_data", "recurring", "nickname",
              "lookup_key", "metadata", "active", "expand"}
INTERVALS = ("day", "week", "month", "year")
MAX_INTERVALS = {"day": 1095, "week": 156, "month": 36, "year": 3}  # "at most three years"


class Catalog:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Told of every customer created or updated, with the request's params (a source
        # becomes a card): (customer, params).
        self.customer_hooks: list[Callable[[dict[str, Any], dict[str, Any]], None]] = []

    # -- customers -------------------------------------------------------------------------
    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, CUSTOMER_KEYS)
        pm_id = self._payment_method(params)
        cust = billing_objects.customer(
            self.store.clock.now(), email=forms.text(params, "email"),
            name=forms.text(params, "name"), metadata=forms.metadata(params),
            default_payment_method=pm_id)
        cust["description"] = forms.text(params, "description")
        cust["preferred_locales"] = forms.strings(params, "preferred_locales")
        clock = forms.text(params, "test_clock")
        if clock:  # lives on that clock's time (see test_clocks)
            cust["test_clock"] = self.store.get("test_helpers.test_clock", clock,
                                                "test_clock")["id"]
        self.store.add(cust)
        self._attach(pm_id, cust["id"])
        self.store.emit("customer.created", cust)
        for hook in self.customer_hooks:
            hook(cust, params)
        return cust

    def update_customer(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, CUSTOMER_KEYS)
        cust = self.store.get("customer", customer_id, "customer")
        before = snapshot(cust)
        for name in ("email", "name", "description"):
            if name in params:
                cust[name] = forms.text(params, name)
        if "metadata" in params:
            cust["metadata"] = {**cust["metadata"], **forms.metadata(params)}
        pm_id = self._payment_method(params)
        if pm_id:
            cust["invoice_settings"]["default_payment_method"] = pm_id
            self._attach(pm_id, cust["id"])
        for hook in self.customer_hooks:
            hook(cust, params)
        self.store.emit_update("customer.updated", cust, before)
        return cust

    def _payment_method(self, params: dict[str, Any]) -> str | None:
        settings = forms.mapping(params, "invoice_settings")
        forms.check_known(settings, {"default_payment_method"}, "invoice_settings")
        name = forms.text(settings, "default_payment_method",
                          param="invoice_settings[default_payment_method]") \
            or forms.text(params, "payment_method")
        return self.resolve_card(name) if name else None

    def resolve_card(self, name: str) -> str:
        """A PaymentMethod id for ``name`` (a ``pm_…`` id, or a test card's name)."""
        pm = methods.resolve(self.store, {"payment_method": name}, self.store.clock.now())
        assert pm is not None
        return pm["id"]

    def _attach(self, pm_id: str | None, customer_id: str) -> None:
        if pm_id is None:
            return
        pm = self.store.get("payment_method", pm_id, "payment_method")
        if pm["customer"] != customer_id:
            pm["customer"] = customer_id
            self.store.emit("payment_method.attached", pm)

    def attach(self, pm_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/payment_methods/{id}/attach``."""
        forms.check_known(params, {"customer", "expand"})
        customer_id = forms.text(params, "customer", required=True) or ""
        self.store.get("customer", customer_id, "customer")
        pm_id = self.resolve_card(pm_id)  # a test card's name attaches a fresh clone of it
        self._attach(pm_id, customer_id)
        return self.store.get("payment_method", pm_id, "payment_method")

    # -- products and prices ---------------------------------------------------------------
    def create_product(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, PRODUCT_KEYS)
        return self._product(params, "")

    def _product(self, params: dict[str, Any], prefix: str) -> dict[str, Any]:
        name = forms.text(params, "name", required=True, param=f"{prefix}name" if not prefix
                          else f"{prefix}[name]")
        prod = billing_objects.product(
            self.store.clock.now(), name=name or "", metadata=forms.metadata(params),
            description=forms.text(params, "description"))
        self.store.add(prod)
        self.store.emit("product.created", prod)
        return prod

    def create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, PRICE_KEYS)
        currency = (forms.text(params, "currency", required=True) or "").lower()
        amount = forms.amount(params, "unit_amount", required=True, minimum=0)
        assert amount is not None
        product_id = forms.text(params, "product")
        data = forms.mapping(params, "product_data")
        if bool(product_id) == bool(data):
            raise invalid("Provide exactly one of product or product_data.", param="product")
        if product_id:
            self.store.get("product", product_id, "product")
        else:
            forms.check_known(data, {"name", "metadata"}, "product_data")
            product_id = self._product(data, "product_data")["id"]
        obj = billing_objects.price(
            self.store.clock.now(), product_id=product_id, currency=currency,
            unit_amount=amount, recurring=self._recurring(params),
            metadata=forms.metadata(params), nickname=forms.text(params, "nickname"),
            lookup_key=forms.text(params, "lookup_key"))
        self.store.add(obj)
        self.store.emit("price.created", obj)
        return obj

    @staticmethod
    def _recurring(params: dict[str, Any]) -> dict[str, Any] | None:
        raw = forms.mapping(params, "recurring")
        if not raw:
            return None
        forms.check_known(raw, {"interval", "interval_count", "usage_type"}, "recurring")
        interval = forms.text(raw, "interval", required=True, param="recurring[interval]")
        if interval not in INTERVALS:
            raise invalid(f"Invalid recurring[interval]: must be one of {', '.join(INTERVALS)}",
                          param="recurring[interval]")
        count = forms.integer(raw, "interval_count", param="recurring[interval_count]") or 1
        if not 1 <= count <= MAX_INTERVALS[interval]:
            raise invalid("Invalid recurring[interval_count]: the interval is at most three "
                          "years.", param="recurring[interval_count]")
        return {"aggregate_usage": None, "interval": interval, "interval_count": count,
                "trial_period_days": None, "usage_type": "licensed"}
