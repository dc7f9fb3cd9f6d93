"""Invoices the merchant builds by hand: invoice items, ``POST /v1/invoices``, and every
invoice's manual steps (update, delete, finalize, pay, send, void, mark uncollectible).

docs.stripe.com/invoicing/integration: ``POST /v1/invoiceitems`` adds a pending item for a
customer (``invoiceitem.created``); ``POST /v1/invoices`` drafts an invoice
(``invoice.created``) that takes the customer's pending items with
``pending_invoice_items_behavior=include`` (``exclude`` is the default). An invoice made by
API has ``auto_advance: false``: nothing happens until the merchant acts —
``finalize`` (``invoice.finalized``), ``pay`` (a card: ``invoice.paid`` and
``invoice.payment_succeeded``; declined: ``invoice.payment_failed`` and a 402; 3D Secure:
``invoice.payment_action_required`` and a 402), ``send`` (``send_invoice``:
``invoice.sent``), ``void`` (``invoice.voided``), ``mark_uncollectible``
(``invoice.marked_uncollectible``), ``DELETE`` of a draft (``invoice.deleted``), ``POST
/v1/invoices/{id}`` (``invoice.updated``). Subscription invoices take the same steps, ``pay``
included: one path, whichever invoice. Parameters: ``versions``
refuses what the request's API version lacks; the handlers refuse what they do not model.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import billing_objects, forms, objects, reading
from ichido.emulator.catalog import Catalog
from ichido.emulator.errors import StripeError, invalid
from ichido.emulator.invoices import DAY, Invoices
from ichido.emulator.payments import Payments
from ichido.emulator.state import Store, snapshot

ITEM_KEYS = ("amount", "currency", "customer", "description", "metadata", "quantity",
             "invoice", "period", "discountable")
INVOICE_KEYS = ("customer", "description", "metadata", "collection_method", "days_until_due",
                "pending_invoice_items_behavior", "auto_advance", "currency",
                "default_payment_method")
UPDATE_KEYS = ("description", "metadata", "auto_advance", "days_until_due",
               "default_payment_method")


class ManualInvoices:
    def __init__(self, store: Store, invoices: Invoices, payments: Payments,
                 catalog: Catalog) -> None:
        self.store, self.invoices, self.payments = store, invoices, payments
        self.catalog = catalog

    # -- invoice items ---------------------------------------------------------------------
    def create_item(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {*ITEM_KEYS, "expand"})
        cust = self.store.get("customer", forms.text(params, "customer", required=True) or "",
                              "customer")
        currency = (forms.text(params, "currency") or cust["currency"] or "").lower()
        if not currency:
            raise invalid("Missing required param: currency.", param="currency",
                          code="parameter_missing")
        quantity = forms.integer(params, "quantity") or 1
        amount = forms.amount(params, "amount", required=True, minimum=-forms.MAX_AMOUNT)
        assert amount is not None
        now = self.store.clock.now()
        invoice_id = forms.text(params, "invoice")
        item = self.store.add({
            "id": objects.new_id("ii"), "object": "invoiceitem", "amount": amount,
            "currency": currency, "customer": cust["id"], "date": now,
            "description": forms.text(params, "description"),
            "discountable": forms.boolean(params, "discountable", default=True),
            "discounts": [], "invoice": None, "livemode": False,
            "metadata": forms.metadata(params), "period": {"end": now, "start": now},
            "price": None, "proration": False, "quantity": quantity, "subscription": None,
            "subscription_item": None, "tax_rates": [], "test_clock": None,
            "unit_amount": amount // quantity, "unit_amount_decimal": str(amount // quantity)})
        self.store.emit("invoiceitem.created", item)
        if invoice_id:
            self._add_lines(self._draft(invoice_id), [item])
        return item

    def list_items(self, params: dict[str, Any]) -> dict[str, Any]:
        return reading.listing(self.store, "invoiceitem", "/v1/invoiceitems", "customer",
                               "invoice")(params)

    def delete_item(self, item_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        item = self.store.get("invoiceitem", item_id, "invoiceitem")
        if item["invoice"]:
            raise invalid("This invoice item is on an invoice and cannot be deleted.",
                          param="invoiceitem")
        self.store.delete("invoiceitem", item_id)
        self.store.emit("invoiceitem.deleted", item)
        return {"id": item_id, "object": "invoiceitem", "deleted": True}

    # -- invoices --------------------------------------------------------------------------
    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {*INVOICE_KEYS, "expand"})
        cust = self.store.get("customer", forms.text(params, "customer", required=True) or "",
                              "customer")
        behavior = forms.text(params, "pending_invoice_items_behavior") or "exclude"
        if behavior not in ("include", "exclude"):
            raise invalid("Invalid pending_invoice_items_behavior: must be one of exclude, "
                          "include", param="pending_invoice_items_behavior")
        method = forms.text(params, "collection_method") or "charge_automatically"
        days = forms.integer(params, "days_until_due")
        if method not in ("charge_automatically", "send_invoice"):
            raise invalid(f"Invalid collection_method: {method}", param="collection_method")
        if (method == "send_invoice") != (days is not None):
            raise invalid("days_until_due is required with collection_method=send_invoice, "
                          "and only then.", param="days_until_due")
        pending = [i for i in self.store.objects["invoiceitem"].values()
                   if i["customer"] == cust["id"] and i["invoice"] is None] \
            if behavior == "include" else []
        currency = (forms.text(params, "currency") or
                    (pending[0]["currency"] if pending else cust["currency"]) or "jpy").lower()
        now = self.store.clock.now()
        inv = self.store.add(self._blank(now, cust, currency, method, days))
        inv.update(description=forms.text(params, "description"),
                   metadata=forms.metadata(params),
                   auto_advance=forms.boolean(params, "auto_advance"),
                   default_payment_method=forms.text(params, "default_payment_method"))
        inv["hosted_invoice_url"] = f"{self.store.public_url}/_emulator/hosted_invoices/" \
                                    f"{inv['id']}"
        self._add_lines(inv, [i for i in pending if i["currency"] == currency], emit=False)
        self.store.emit("invoice.created", inv)
        return inv

    def _blank(self, now: int, cust: dict[str, Any], currency: str, method: str,
               days: int | None) -> dict[str, Any]:
        """A draft with no lines, in the shape the subscription invoices have (built by the
        same builder from a stand-in with no item, then stripped of the subscription)."""
        stand_in = {"id": None, "currency": currency, "collection_method": method,
                    "metadata": {}, "payment_settings": {"payment_method_types": None},
                    "items": {"data": [{"id": None, "quantity": 0, "price": {
                        "nickname": None, "unit_amount": 0}}]}}
        inv = billing_objects.invoice(now, stand_in, cust, amount=0, reason="manual",
                                      period=(now, now))
        inv["lines"] = objects.list_object([], f"/v1/invoices/{inv['id']}/lines", False)
        inv.update(subscription=None, subscription_details=None, auto_advance=False)
        inv["days_until_due"] = days
        return inv

    def _add_lines(self, inv: dict[str, Any], items: list[dict[str, Any]],
                   emit: bool = True) -> None:
        before = snapshot(inv)
        for item in items:
            if item["currency"] != inv["currency"]:
                raise invalid("The invoice item's currency differs from the invoice's.",
                              param="currency")
            item["invoice"] = inv["id"]
            inv["lines"]["data"].append({
                "id": objects.new_id("il"), "object": "line_item", "amount": item["amount"],
                "amount_excluding_tax": item["amount"], "currency": item["currency"],
                "description": item["description"], "discount_amounts": [],
                "discountable": item["discountable"], "discounts": [],
                "invoice_item": item["id"], "livemode": False,
                "metadata": dict(item["metadata"]), "period": dict(item["period"]),
                "price": None, "proration": False,
                "proration_details": {"credited_items": None},
                "quantity": item["quantity"], "subscription": None, "tax_amounts": [],
                "tax_rates": [], "type": "invoiceitem",
                "unit_amount_excluding_tax": item["unit_amount_decimal"]})
        total = sum(line["amount"] for line in inv["lines"]["data"])
        for name in ("amount_due", "amount_remaining", "subtotal", "subtotal_excluding_tax",
                     "total", "total_excluding_tax"):
            inv[name] = total
        if emit and items:
            self.store.emit_update("invoice.updated", inv, before)

    def update(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {*UPDATE_KEYS, "expand"})
        inv = self.store.get("invoice", invoice_id, "invoice")
        if inv["status"] in ("paid", "void", "uncollectible") and set(params) - {"metadata",
                                                                                "expand"}:
            raise invalid(f"This invoice is {inv['status']}: only its metadata can change.",
                          code="invoice_not_editable")
        before = snapshot(inv)
        for name in ("description", "default_payment_method"):
            if name in params:
                inv[name] = forms.text(params, name)
        if "auto_advance" in params:
            inv["auto_advance"] = forms.boolean(params, "auto_advance")
        if "metadata" in params:
            merged = {**inv["metadata"], **forms.metadata(params)}
            inv["metadata"] = {k: v for k, v in merged.items() if v != ""}
        if inv != before:
            self.store.emit_update("invoice.updated", inv, before)
        return inv

    def delete(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        inv = self._draft(invoice_id)
        if inv["subscription"]:
            raise invalid("A subscription's invoice cannot be deleted.", param="invoice")
        for line in inv["lines"]["data"]:
            item = self.store.objects["invoiceitem"].get(line.get("invoice_item") or "")
            if item is not None:
                self.store.get("invoiceitem", item["id"])["invoice"] = None
        self.store.delete("invoice", invoice_id)
        self.store.emit("invoice.deleted", inv)
        return {"id": invoice_id, "object": "invoice", "deleted": True}

    def finalize(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        inv = self._draft(invoice_id)
        if "auto_advance" in params:
            inv["auto_advance"] = forms.boolean(params, "auto_advance")
        if inv["subscription"]:
            return self.invoices.finalize(inv, self.store.get("subscription",
                                                              inv["subscription"]))
        return self._finalize(inv)

    def _finalize(self, inv: dict[str, Any]) -> dict[str, Any]:
        now = self.store.clock.now()
        inv.update(status="open", effective_at=now)
        inv["status_transitions"]["finalized_at"] = now
        if inv["collection_method"] == "send_invoice":
            inv["due_date"] = now + (inv.get("days_until_due") or 0) * DAY
        self.store.emit("invoice.finalized", inv)
        if inv["amount_due"] == 0:
            self.invoices._paid(inv, None)
        return inv

    def pay(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/pay``, one path for every invoice, a subscription's or one
        made by hand: a draft is finalized first; ``paid_out_of_band=true`` marks it paid
        outside Stripe; else a card is charged (``payment_method``, else the default one):
        declined, 402 ``card_declined``; 3D Secure, 402
        ``invoice_payment_intent_requires_action`` after ``invoice.payment_action_required``."""
        forms.check_known(params, {"payment_method", "paid_out_of_band", "off_session", "expand"})
        inv = self.store.get("invoice", invoice_id, "invoice")
        if inv["status"] == "draft":
            self._finalize(inv)
        if inv["status"] != "open":
            raise invalid(f"Invoice {invoice_id} is {inv['status']}: it cannot be paid now.",
                          code="invoice_already_paid" if inv["status"] == "paid"
                          else "invoice_not_editable")
        if forms.boolean(params, "paid_out_of_band"):
            inv["paid_out_of_band"] = True
            return self.invoices._paid(inv, None)
        name = forms.text(params, "payment_method")
        pm_id = self.catalog.resolve_card(name) if name else self.invoices.default_card(inv)
        if not pm_id:
            raise invalid("This invoice's customer has no payment method: pass "
                          "payment_method.", param="payment_method")
        pi = self.store.objects["payment_intent"].get(inv["payment_intent"] or "") or \
            self.invoices._intent(inv, ["card"])
        if pi["payment_method_types"] != ["card"]:
            raise invalid("This invoice has no card payment to attempt: pay its konbini "
                          "voucher.", param="payment_method")
        self.invoices.charge(inv, pi, pm_id)
        if pi["status"] == "requires_action":
            raise StripeError(402, "card_error", "This payment requires additional user "
                              "action before it can be completed successfully.",
                              code="invoice_payment_intent_requires_action")
        if inv["status"] != "paid":
            raise StripeError(402, "card_error", "Your card was declined.",
                              code="card_declined", decline_code="generic_decline")
        return inv

    def send(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        inv = self.store.get("invoice", invoice_id, "invoice")
        if inv["collection_method"] != "send_invoice":
            raise invalid("You can only manually send an invoice if its collection method is "
                          "'send_invoice'.", param="collection_method")
        if inv["status"] == "draft":
            self._finalize(inv)
        if inv["status"] != "open":
            raise invalid(f"Invoice {invoice_id} is {inv['status']}: it cannot be sent.")
        self.store.emit("invoice.sent", inv)
        return inv

    def void(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._close(invoice_id, "void", "voided_at", "invoice.voided")

    def mark_uncollectible(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._close(invoice_id, "uncollectible", "marked_uncollectible_at",
                           "invoice.marked_uncollectible")

    def _close(self, invoice_id: str, status: str, stamp: str, event: str) -> dict[str, Any]:
        inv = self.store.get("invoice", invoice_id, "invoice")
        allowed = ("open",) if status == "void" else ("open", "uncollectible")
        if inv["status"] not in allowed or inv["status"] == status:
            raise invalid(f"Invoice {invoice_id} is {inv['status']}: only an open invoice can "
                          f"become {status}.", code="invoice_not_editable")
        before = snapshot(inv)
        inv["status"] = status
        inv["status_transitions"][stamp] = self.store.clock.now()
        pi = self.store.objects["payment_intent"].get(inv["payment_intent"] or "")
        if status == "void" and pi is not None and pi["status"] != "succeeded":
            self.payments.cancel(pi["id"], {})
        self.store.emit_update(event, inv, before)
        return inv

    def _draft(self, invoice_id: str) -> dict[str, Any]:
        inv = self.store.get("invoice", invoice_id, "invoice")
        if inv["status"] != "draft":
            raise invalid(f"Invoice {invoice_id} is {inv['status']}: only a draft can do "
                          "this.", code="invoice_not_editable")
        return inv
