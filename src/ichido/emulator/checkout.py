"""Checkout Sessions in payment mode: created by the merchant, completed by the test buyer on a
hosted page (card or konbini), expired by the clock.

Stripe's flow (docs.stripe.com/payments/checkout, …/payments/konbini/accept-a-payment?
payment-ui=checkout): ``POST /v1/checkout/sessions`` with ``line_items`` (``price`` or
``price_data``), ``payment_method_types``, ``success_url``… answers ``status: open`` and a
``url``. The buyer pays there: a card payment succeeds and the session is ``complete`` /
``paid`` (``checkout.session.completed``); konbini issues a voucher and the session is
``complete`` / ``unpaid`` (``checkout.session.completed``: do not fulfil yet), then
``checkout.session.async_payment_succeeded`` when the voucher is paid, or
``checkout.session.async_payment_failed`` when it expires. An open session expires at
``expires_at`` (default 24 h, 30 minutes to 24 hours): ``checkout.session.expired``. The
PaymentIntent is made when the buyer pays (as since API 2022-08-01).
"""

from __future__ import annotations

import html
from typing import Any

from ichido.emulator import billing_objects, forms, intent_params, konbini, reading
from ichido.emulator.catalog import Catalog
from ichido.emulator.errors import invalid, unexpected_state
from ichido.emulator.objects import new_id
from ichido.emulator.payments import Payments, shipping
from ichido.emulator.state import Store, snapshot

CREATE_KEYS = {"mode", "line_items", "payment_method_types", "success_url", "cancel_url",
               "allowed_payment_method_types", "excluded_payment_method_types",
               "customer", "customer_email", "metadata", "client_reference_id", "expires_at",
               "payment_method_options", "payment_intent_data", "locale", "expand"}
DEFAULT_LIFETIME = 24 * 3600


class Checkout:
    def __init__(self, store: Store, payments: Payments, catalog: Catalog) -> None:
        self.store, self.payments, self.catalog = store, payments, catalog
        payments.listeners.append(self._on_payment)
        store.due_actions.update(checkout_expire=self._due_expire)

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, CREATE_KEYS)
        if (forms.text(params, "mode") or "payment") != "payment":
            raise invalid("The emulator's Checkout takes mode=payment only.", param="mode")
        lines = self._lines(params)
        amount = sum(line["amount_total"] for line in lines)
        if amount > forms.MAX_AMOUNT:
            raise invalid("The total is more than eight digits.", param="line_items",
                          code="amount_too_large")
        currency = lines[0]["currency"]
        # payment_method_types (to 2026-08-26.dahlia) or allowed_/excluded_ (since
        # 2026-07-29.dahlia): read as a PaymentIntent's (see intent_params).
        types, _ = intent_params.types(params, amount, currency)
        if "konbini" in types:
            konbini.check_amount(amount, currency)
        now = self.store.clock.now()
        expires_at = forms.integer(params, "expires_at") or now + DEFAULT_LIFETIME
        if not now + 1800 <= expires_at <= now + DEFAULT_LIFETIME:
            raise invalid("expires_at must be 30 minutes to 24 hours from now.",
                          param="expires_at")
        options = forms.mapping(params, "payment_method_options")
        forms.check_known(options, set(types), "payment_method_options")
        days = forms.mapping(options, "konbini", "payment_method_options[konbini]")
        forms.check_known(days, {"expires_after_days"}, "payment_method_options[konbini]")
        customer = forms.text(params, "customer")
        if customer:
            self.store.get("customer", customer, "customer")
        session = billing_objects.checkout_session(
            now, amount=amount, currency=currency, types=types, expires_at=expires_at,
            url=self.store.public_url, fields={
                "success_url": forms.text(params, "success_url"),
                "cancel_url": forms.text(params, "cancel_url"), "customer": customer,
                "customer_email": forms.text(params, "customer_email"),
                "client_reference_id": forms.text(params, "client_reference_id"),
                "metadata": forms.metadata(params), "locale": forms.text(params, "locale"),
                "allowed_payment_method_types": forms.strings(
                    params, "allowed_payment_method_types") or None,
                "excluded_payment_method_types": forms.strings(
                    params, "excluded_payment_method_types") or None,
                "payment_method_options": {"konbini": konbini.read_options(
                    days, now) | {"expires_at": None}} if "konbini" in types else {}})
        intent = forms.mapping(params, "payment_intent_data")
        forms.check_known(intent, {"metadata", "description", "shipping",
                                   "setup_future_usage"}, "payment_intent_data")
        self.store.add(session)
        self.store.private[session["id"]] = {"lines": lines, "intent": intent}
        self.store.schedule(expires_at, "checkout_expire", session["id"])
        return session

    def _lines(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        raw = params.get("line_items")
        if not isinstance(raw, list) or not raw or len(raw) > 100:
            raise invalid("line_items: give 1 to 100 items.", param="line_items")
        lines = []
        for i, item in enumerate(raw):
            where = f"line_items[{i}]"
            if not isinstance(item, dict):
                raise invalid(f"Invalid {where}", param=where)
            forms.check_known(item, {"price", "price_data", "quantity"}, where)
            quantity = forms.integer(item, "quantity", param=f"{where}[quantity]") or 1
            if not 1 <= quantity <= 999_999:
                raise invalid(f"Invalid {where}[quantity]", param=f"{where}[quantity]")
            if item.get("price_data"):
                data = forms.mapping(item, "price_data", f"{where}[price_data]")
                price = self.catalog.create_price({**data, "currency": data.get("currency",
                                                                                  "jpy")})
            else:
                price = self.store.get("price", forms.text(item, "price", required=True,
                                                           param=f"{where}[price]") or "",
                                       f"{where}[price]")
            if price["recurring"]:
                raise invalid("Payment mode takes one-time prices.", param=f"{where}[price]")
            if lines and price["currency"] != lines[0]["currency"]:
                raise invalid("All line items must be in one currency.",
                              param=f"{where}[price]")
            total = price["unit_amount"] * quantity
            product = self.store.get("product", price["product"])
            lines.append({"id": new_id("li", 24), "object": "item", "amount_discount": 0,
                          "amount_subtotal": total, "amount_tax": 0, "amount_total": total,
                          "currency": price["currency"], "description": product["name"],
                          "price": price,
                          "quantity": quantity})
        return lines

    def retrieve(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        session = self.store.get("checkout.session", session_id, "session")
        if "line_items" in forms.strings(params, "expand"):
            return {**snapshot(session), "line_items": self.line_items(session_id, {})}
        return session

    def line_items(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        self.store.get("checkout.session", session_id, "session")
        lines = self.store.private[session_id]["lines"]
        return reading.page(lines, params, f"/v1/checkout/sessions/{session_id}/line_items",
                            "item", lines)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return reading.listing(self.store, "checkout.session", "/v1/checkout/sessions",
                               "payment_intent", "customer", "status")(params)

    def expire(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        session = self._open(session_id)
        return self._expire(session)

    # -- the buyer -------------------------------------------------------------------------
    def complete(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The buyer pays: ``payment_method_type`` card (``card``: a test card name, default
        ``pm_card_visa``) or konbini (``email``, ``name``); returns the session."""
        forms.check_known(params, {"payment_method_type", "card", "email", "name"})
        session = self._open(session_id)
        kind = forms.text(params, "payment_method_type") or session["payment_method_types"][0]
        if kind not in session["payment_method_types"]:
            raise invalid(f"This session does not take {kind}.", param="payment_method_type")
        email = forms.text(params, "email") or session["customer_email"]
        if kind == "konbini" and not email:
            raise invalid("Konbini needs the buyer's e-mail.", param="email")
        name = forms.text(params, "name")
        pm_id = self.catalog.resolve_card(forms.text(params, "card") or "pm_card_visa") \
            if kind == "card" else self.payments.konbini_method(name, email)
        return self.pay(session, kind, pm_id, email, name)

    def pay(self, session: dict[str, Any], kind: str, pm_id: str, email: str | None,
            name: str | None) -> dict[str, Any]:
        """The buyer's payment with ``pm_id``, from the hosted page or ``payment_pages``."""
        pi = self._intent(session, kind)
        self.payments.attempt(pi, pm_id)
        if pi["status"] in ("succeeded", "requires_action", "processing"):
            session.update(status="complete", customer_details={
                "address": None, "email": email, "name": name, "phone": None,
                "tax_exempt": "none", "tax_ids": []},
                payment_status="paid" if pi["status"] == "succeeded" else "unpaid")
            self.store.emit("checkout.session.completed", session)
        return session

    def _intent(self, session: dict[str, Any], kind: str) -> dict[str, Any]:
        intent = self.store.private[session["id"]]["intent"]
        days = session["payment_method_options"].get("konbini", {}).get("expires_after_days")
        pi = self.payments.open_intent(
            session["amount_total"], [kind], customer=session["customer"],
            description=forms.text(intent, "description"),
            metadata=forms.metadata(intent), currency=session["currency"],
            konbini_expires_at=konbini.expiry({"expires_after_days": days},
                                              self.store.clock.now(), "never")
            if kind == "konbini" and days else None)
        if intent.get("shipping"):
            pi["shipping"] = shipping(forms.mapping(intent, "shipping"))
        pi["setup_future_usage"] = forms.text(intent, "setup_future_usage")
        session["payment_intent"] = pi["id"]
        return pi

    def _on_payment(self, pi: dict[str, Any], succeeded: bool) -> None:
        session = self.store.objects["checkout.session"].get(self._of(pi))
        if session is None or session["status"] != "complete" \
                or session["payment_status"] == "paid":
            return
        if succeeded:
            session["payment_status"] = "paid"
            self.store.emit("checkout.session.async_payment_succeeded", session)
        else:
            self.store.emit("checkout.session.async_payment_failed", session)

    def _of(self, pi: dict[str, Any]) -> str:
        for session in self.store.objects["checkout.session"].values():
            if session["payment_intent"] == pi["id"]:
                return session["id"]
        return ""

    def _due_expire(self, session_id: str, token: str) -> None:
        session = self.store.get("checkout.session", session_id)
        if session["status"] == "open":
            self._expire(session)

    def _expire(self, session: dict[str, Any]) -> dict[str, Any]:
        session.update(status="expired", url=None)
        pi = self.store.objects["payment_intent"].get(session["payment_intent"] or "")
        if pi is not None and pi["status"] == "requires_payment_method":
            pi.update(status="canceled", canceled_at=self.store.clock.now(),
                      cancellation_reason="abandoned")
            self.store.emit("payment_intent.canceled", pi)
        self.store.emit("checkout.session.expired", session)
        return session

    def _open(self, session_id: str) -> dict[str, Any]:
        session = self.store.get("checkout.session", session_id, "session")
        if session["status"] != "open":
            raise unexpected_state(f"This Checkout Session is {session['status']}.")
        return session

    # -- the hosted page -------------------------------------------------------------------
    def page(self, session_id: str) -> str | None:
        session = self.store.objects["checkout.session"].get(session_id)
        if session is None:
            return None
        lines = "".join(f"<li>{html.escape(line['description'])} × {line['quantity']}: "
                        f"{money(line['amount_total'], line['currency'])}</li>"
                        for line in self.store.private[session_id]["lines"])
        if session["status"] != "open":
            return f"<h1>Checkout</h1><p>This session is {session['status']}.</p>"
        forms_html = "".join(
            f"<form method=post><input type=hidden name=payment_method_type value={kind}>"
            f"<input name=email placeholder=e-mail> <input name=name placeholder=name> "
            f"<button>{'カードで支払う' if kind == 'card' else 'コンビニで支払う'}</button></form>"
            for kind in session["payment_method_types"])
        return (f"<!doctype html><meta charset=utf-8><title>Checkout</title>"
                f"<h1>{money(session['amount_total'], session['currency'])}</h1>"
                f"<ul>{lines}</ul>{forms_html}")


def money(amount: int, currency: str) -> str:
    """¥1,500 for yen (no minor unit); 15.00 USD for two-decimal currencies."""
    if currency == "jpy":
        return f"¥{amount:,}"
    return f"{amount / 100:,.2f} {currency.upper()}"
