"""How the emulator's objects look in the API versions it renders (see ``versions``).

The builders (``objects``, ``billing_objects``) keep every field the emulator works with, old
names included (``invoice.subscription``, ``invoice.payment_intent``, a subscription's
``current_period_*``): the emulator's logic reads them. Rendering reshapes what moved and then
drops every field the requested version does not have. Since ``2025-03-31.basil``
(docs.stripe.com/changelog/basil, the oldest version rendered):

- an invoice names its subscription under ``parent.subscription_details.subscription`` (there
  is no top-level ``subscription``, ``subscription_details``, ``payment_intent``, ``charge`` or
  ``paid``); its payments are InvoicePayments, shown under ``payments`` when expanded
  (``expand[]=payments``) and listed by ``GET /v1/invoice_payments?invoice=…``;
- an invoice line item says what it bills under ``parent`` and ``pricing``;
- a subscription's ``current_period_start``/``_end`` live on its items only.
- an event's ``data.previous_attributes`` is computed from the object as the event's version
  shows it, before and after.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import versions
from ichido.emulator.versions import Version, reshape


@reshape("event")
def event(obj: dict[str, Any], version: Version) -> dict[str, Any]:
    data = dict(obj["data"])
    before = data.pop("before", None)
    if before is not None:
        old = versions.render(before, version)
        new = versions.render(data["object"], version)
        data["previous_attributes"] = {k: old.get(k) for k in sorted(set(old) | set(new))
                                       if old.get(k) != new.get(k)}
    return obj | {"data": data}


@reshape("invoice")
def invoice(obj: dict[str, Any], version: Version) -> dict[str, Any]:
    sub = obj.get("subscription")
    details = obj.get("subscription_details") or {}
    obj["parent"] = None if sub is None else {
        "type": "subscription_details", "quote_details": None,
        "subscription_details": {"metadata": details.get("metadata") or {},
                                 "subscription": sub}}
    return obj


@reshape("line_item")
def line_item(obj: dict[str, Any], version: Version) -> dict[str, Any]:
    price = obj.get("price")
    if obj.get("subscription_item"):
        obj["parent"] = {
            "type": "subscription_item_details", "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None, "proration": bool(obj.get("proration")),
                "proration_details": {"credited_items": None},
                "subscription": obj.get("subscription"),
                "subscription_item": obj["subscription_item"]}}
    if isinstance(price, dict):
        obj["pricing"] = {"type": "price_details",
                          "price_details": {"price": price["id"], "product": price["product"]},
                          "unit_amount_decimal": price.get("unit_amount_decimal")}
    return obj
