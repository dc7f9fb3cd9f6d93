"""The rest of the catalog's life: products, prices and customers updated and deleted, coupons
and plans.

What Stripe's own tools do (``stripe trigger product.updated``, ``coupon.deleted``,
``plan.created``...). Parameters: ``versions`` refuses what the request's API version lacks;
the handlers refuse what they do not model. Deleting answers ``{"id", "object", "deleted":
true}`` and emits ``<kind>.deleted`` with the object as it was
(docs.stripe.com/api/customers/delete). A customer's ``coupon`` (``customer.discount.*``) is
gone since 2025-03-31.basil, the oldest version rendered: Stripe refuses it, and so does
``versions``.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import billing_objects, forms, objects
from ichido.emulator.catalog import INTERVALS, MAX_INTERVALS
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, snapshot

DURATIONS = ("once", "repeating", "forever")


def deleted(obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": obj["id"], "object": obj["object"], "deleted": True}


class CatalogEdits:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- updates and deletes of what the catalog creates -----------------------------------
    def update_product(self, product_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"active", "description", "metadata", "name", "url",
                                   "unit_label", "expand"})
        return self._update("product", product_id, params, ("name", "description", "url",
                                                            "unit_label"))

    def update_price(self, price_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"active", "lookup_key", "metadata", "nickname", "expand"})
        return self._update("price", price_id, params, ("nickname", "lookup_key"))

    def delete_product(self, product_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        if any(p["product"] == product_id for p in self.store.objects["price"].values()):
            raise invalid("This product cannot be deleted because it has one or more "
                          "user-created prices.", code="product_has_prices")
        return self._delete("product", product_id)

    def delete_customer(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Stripe cancels the customer's subscriptions at once; here they end with it too."""
        forms.check_known(params, {"expand"})
        return self._delete("customer", customer_id)

    def _update(self, kind: str, object_id: str, params: dict[str, Any],
                texts: tuple[str, ...]) -> dict[str, Any]:
        obj = self.store.get(kind, object_id, "id")
        before = snapshot(obj)
        for name in texts:
            if name in params:
                obj[name] = forms.text(params, name)
        if "active" in params:
            obj["active"] = forms.boolean(params, "active")
        if "metadata" in params:  # Stripe merges; an empty value removes a key
            merged = {**obj["metadata"], **forms.metadata(params)}
            obj["metadata"] = {k: v for k, v in merged.items() if v != ""}
        if "updated" in obj:
            obj["updated"] = self.store.clock.now()
        if obj != before:
            self.store.emit_update(f"{kind}.updated", obj, before)
        return obj

    def _delete(self, kind: str, object_id: str) -> dict[str, Any]:
        obj = self.store.delete(kind, object_id)
        self.store.emit(f"{kind}.deleted", obj)
        return deleted(obj)

    # -- coupons ---------------------------------------------------------------------------
    def create_coupon(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"amount_off", "currency", "duration", "duration_in_months",
                                   "id", "max_redemptions", "metadata", "name", "percent_off",
                                   "redeem_by", "expand"})
        percent, amount_off = params.get("percent_off"), forms.amount(params, "amount_off")
        if (percent in (None, "")) == (amount_off is None):
            raise invalid("You must pass exactly one of percent_off or amount_off.",
                          param="percent_off")
        currency = (forms.text(params, "currency") or "").lower() or None
        if amount_off is not None and currency is None:
            raise invalid("You must pass currency when passing amount_off.", param="currency")
        duration = forms.text(params, "duration") or "once"
        if duration not in DURATIONS:
            raise invalid(f"Invalid duration: must be one of {', '.join(DURATIONS)}",
                          param="duration")
        months = forms.integer(params, "duration_in_months")
        if (duration == "repeating") != (months is not None):
            raise invalid("duration_in_months is required with duration=repeating, and only "
                          "then.", param="duration_in_months")
        coupon_id = forms.text(params, "id") or objects.new_id("x", 8)[2:]
        if coupon_id in self.store.objects["coupon"]:
            raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
        coupon = self.store.add({
            "id": coupon_id, "object": "coupon", "amount_off": amount_off,
            "created": self.store.clock.now(), "currency": currency, "duration": duration,
            "duration_in_months": months, "livemode": False,
            "max_redemptions": forms.integer(params, "max_redemptions"),
            "metadata": forms.metadata(params), "name": forms.text(params, "name"),
            "percent_off": _percent(params) if percent not in (None, "") else None,
            "redeem_by": forms.integer(params, "redeem_by"), "times_redeemed": 0,
            "valid": True})
        self.store.emit("coupon.created", coupon)
        return coupon

    def update_coupon(self, coupon_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"metadata", "name", "expand"})
        return self._update("coupon", coupon_id, params, ("name",))

    def delete_coupon(self, coupon_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        return self._delete("coupon", coupon_id)

    # -- plans (the older face of recurring prices) ----------------------------------------
    def create_plan(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"active", "amount", "currency", "id", "interval",
                                   "interval_count", "metadata", "nickname", "product",
                                   "trial_period_days", "expand"})
        currency = (forms.text(params, "currency", required=True) or "").lower()
        interval = forms.text(params, "interval", required=True) or ""
        if interval not in INTERVALS:
            raise invalid(f"Invalid interval: must be one of {', '.join(INTERVALS)}",
                          param="interval")
        count = forms.integer(params, "interval_count") or 1
        if not 1 <= count <= MAX_INTERVALS[interval]:
            raise invalid("Invalid interval_count: the interval is at most three years.",
                          param="interval_count")
        amount = forms.amount(params, "amount", minimum=0)
        product_id = self._plan_product(params)
        now = self.store.clock.now()
        plan = self.store.add({
            "id": forms.text(params, "id") or objects.new_id("price"), "object": "plan",
            "active": forms.boolean(params, "active", default=True), "amount": amount,
            "amount_decimal": None if amount is None else str(amount),
            "billing_scheme": "per_unit", "created": now, "currency": currency,
            "interval": interval, "interval_count": count, "livemode": False,
            "metadata": forms.metadata(params), "meter": None,
            "nickname": forms.text(params, "nickname"), "product": product_id,
            "tiers_mode": None, "transform_usage": None,
            "trial_period_days": forms.integer(params, "trial_period_days"),
            "usage_type": "licensed"})
        self.store.emit("plan.created", plan)
        return plan

    def _plan_product(self, params: dict[str, Any]) -> str:
        raw = params.get("product")
        if isinstance(raw, str) and raw:
            return self.store.get("product", raw, "product")["id"]
        data = forms.mapping(params, "product")
        forms.check_known(data, {"name", "active", "id", "metadata", "statement_descriptor",
                                 "tax_code", "unit_label"}, "product")
        name = forms.text(data, "name", required=True, param="product[name]")
        now = self.store.clock.now()
        prod = self.store.add(billing_objects.product(now, name=name or "", description=None,
                                                      metadata=forms.metadata(data)))
        self.store.emit("product.created", prod)
        return prod["id"]

    def update_plan(self, plan_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"active", "metadata", "nickname", "expand"})
        return self._update("plan", plan_id, params, ("nickname",))

    def delete_plan(self, plan_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        return self._delete("plan", plan_id)


def _percent(params: dict[str, Any]) -> float:
    raw = forms.text(params, "percent_off") or ""
    try:
        value = float(raw)
    except ValueError:
        raise invalid(f"Invalid decimal: {raw[:20]}", param="percent_off") from None
    if not 0 < value <= 100:
        raise invalid("percent_off must be greater than 0 and at most 100.",
                      param="percent_off")
    return value
