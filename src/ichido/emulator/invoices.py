"""Invoices: drafted, finalized, collected by card or by konbini voucher, paid or lapsed.

Stripe's flow (docs.stripe.com/billing/invoices/overview, …/subscriptions/overview):
``invoice.created`` (draft); a subscription's first invoice is finalized at once, a renewal's
``FINALIZE_AFTER`` (an hour) later: ``invoice.finalized``, then collection.
- ``charge_automatically``: a PaymentIntent charges the default card. Paid: ``invoice.paid``,
  ``invoice.payment_succeeded``. Declined: ``invoice.payment_failed`` and retries
  ``CARD_RETRY_DAYS`` after each failure (Stripe's "custom retry schedule"; Smart Retries are
  not modelled); after the last one the subscription is canceled, Stripe's default.
- ``send_invoice`` (konbini): ``due_date`` = finalization + ``days_until_due`` days; a
  PaymentIntent carries a konbini voucher (``next_action.konbini_display_details``) for the
  customer's e-mail, expiring at the due date; ``invoice.sent``. The test-mode e-mail stories
  apply (``fill_never@…`` never pays; any other address pays after three minutes). Unpaid at
  the due date: the voucher expires (``invoice.payment_failed``), ``invoice.overdue``, the
  subscription goes ``past_due``, and ``OVERDUE_CANCEL_AFTER`` later it is canceled.
A ¥0 invoice (a trial's) is paid on finalization. Controls: ``pay`` (the buyer pays now: the
voucher at a store, or a working card) and ``lapse`` (never paid: dunning ends now).
"""

from __future__ import annotations

from typing import Any, Callable

from ichido.emulator import billing_objects, forms, konbini, reading
from ichido.emulator.catalog import Catalog
from ichido.emulator.errors import StripeError, invalid
from ichido.emulator.payments import Payments
from ichido.emulator.state import Store, snapshot

DAY = 86400
FINALIZE_AFTER = 3600
CARD_RETRY_DAYS = (3, 5, 7)
OVERDUE_CANCEL_AFTER = 7 * DAY
LIST_FILTERS = ("customer", "subscription", "status", "collection_method")


class Invoices:
    def __init__(self, store: Store, payments: Payments, catalog: Catalog) -> None:
        self.store, self.payments, self.catalog = store, payments, catalog
        # The subscription follows its invoices: (invoice, what happened) with what in
        # "paid", "failed", "overdue", "lapsed".
        self.listeners: list[Callable[[dict[str, Any], str], None]] = []
        store.due_actions.update(invoice_finalize=self._due_finalize,
                                 invoice_retry=self._due_retry,
                                 invoice_overdue=self._due_overdue,
                                 invoice_lapse=self._due_lapse)
        payments.listeners.append(self._on_payment)

    # -- the life of one invoice -----------------------------------------------------------
    def draft(self, sub: dict[str, Any], amount: int, reason: str,
              period: tuple[int, int]) -> dict[str, Any]:
        cust = self.store.get("customer", sub["customer"], "customer")
        inv = self.store.add(billing_objects.invoice(self.store.clock.now(), sub, cust,
                                                     amount=amount, reason=reason,
                                                     period=period))
        inv["hosted_invoice_url"] = f"{self.store.public_url}/_emulator/hosted_invoices/" \
                                    f"{inv['id']}"
        self.store.emit("invoice.created", inv)
        return inv

    def finalize_later(self, inv: dict[str, Any]) -> None:
        self.store.schedule(self.store.clock.now() + FINALIZE_AFTER, "invoice_finalize",
                            inv["id"])

    def finalize(self, inv: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
        now = self.store.clock.now()
        inv.update(status="open", effective_at=now)
        inv["status_transitions"]["finalized_at"] = now
        if inv["collection_method"] == "send_invoice":
            inv["due_date"] = now + (sub["days_until_due"] or 0) * DAY
        self.store.emit("invoice.finalized", inv)
        if inv["amount_due"] == 0:
            return self._paid(inv, None)
        if inv["collection_method"] == "send_invoice":
            return self._send(inv)
        pi = self._intent(inv, ["card"])
        pm_id = self._card(sub)
        if pm_id is None:  # nothing to charge: the attempt fails as a missing card would
            self._failed(inv)
            return inv
        self.charge(inv, pi, pm_id)
        return inv

    def _intent(self, inv: dict[str, Any], types: list[str], **options: Any) -> dict[str, Any]:
        pi = self.payments.open_intent(
            inv["amount_due"], types, customer=inv["customer"], metadata={},
            description=f"Invoice {inv['number']}", currency=inv["currency"], **options)
        pi["invoice"] = inv["id"]
        inv["payment_intent"] = pi["id"]
        self.store.add(billing_objects.invoice_payment(self.store.clock.now(), inv, pi["id"]))
        return pi

    def charge(self, inv: dict[str, Any], pi: dict[str, Any], pm_id: str) -> None:
        """One attempt to collect ``inv`` by card, whoever makes it (finalization, a retry,
        the merchant's ``pay``): paid or declined reach the invoice through the payment's
        listeners; a card that needs 3D Secure leaves it open and Stripe sends
        ``invoice.payment_action_required``."""
        self.payments.attempt(pi, pm_id)
        if pi["status"] == "requires_action" and \
                (pi["next_action"] or {}).get("type") == "use_stripe_sdk":
            self.store.emit("invoice.payment_action_required", inv)

    def default_card(self, inv: dict[str, Any]) -> str | None:
        """What ``pay`` charges when given no card: the invoice's, its subscription's, then
        the customer's default (docs.stripe.com/api/invoices/pay)."""
        sub = self.store.objects["subscription"].get(inv["subscription"] or "") or {}
        cust = self.store.get("customer", inv["customer"], "customer")
        return inv.get("default_payment_method") or sub.get("default_payment_method") or \
            cust["invoice_settings"]["default_payment_method"] or cust["default_source"]

    def _card(self, sub: dict[str, Any]) -> str | None:
        cust = self.store.get("customer", sub["customer"], "customer")
        return sub["default_payment_method"] or \
            cust["invoice_settings"]["default_payment_method"] or cust["default_source"]

    def _send(self, inv: dict[str, Any]) -> dict[str, Any]:
        """A konbini voucher for the customer's e-mail, valid until the due date."""
        due = inv["due_date"]
        expires = min(due, konbini.expiry({"expires_after_days": 60}, self.store.clock.now(),
                                          "never"))
        pi = self._intent(inv, ["konbini"], konbini_expires_at=expires)
        pm_id = self.payments.konbini_method(inv["customer_name"], inv["customer_email"])
        self.payments.attempt(pi, pm_id)
        self.store.emit("invoice.sent", inv)
        self.store.schedule(due, "invoice_overdue", inv["id"])
        return inv

    def _on_payment(self, pi: dict[str, Any], succeeded: bool) -> None:
        inv = self.store.objects["invoice"].get(pi.get("invoice") or "")
        if inv is None or inv["status"] != "open":
            return
        if succeeded:
            self._paid(inv, pi)
        else:
            self._failed(inv)

    def _paid(self, inv: dict[str, Any], pi: dict[str, Any] | None) -> dict[str, Any]:
        before = snapshot(inv)
        now = self.store.clock.now()
        inv.update(status="paid", paid=True, amount_paid=inv["amount_due"], amount_remaining=0,
                   attempted=True, attempt_count=inv["attempt_count"] + (pi is not None),
                   next_payment_attempt=None, charge=pi["latest_charge"] if pi else None,
                   ending_balance=0)
        inv["status_transitions"]["paid_at"] = now
        for payment_id, found in list(self.store.objects["invoice_payment"].items()):
            if found["invoice"] == inv["id"] and pi is not None \
                    and found["payment"]["payment_intent"] == pi["id"]:
                payment = self.store.get("invoice_payment", payment_id)  # journaled
                payment.update(status="paid", amount_paid=pi["amount_received"])
                payment["status_transitions"]["paid_at"] = now
                # Stripe's invoices carry ``payments`` only when expanded (not in webhooks):
                # this event is how a listener learns which PaymentIntent paid the invoice.
                self.store.emit("invoice_payment.paid", payment)
        if before["status"] == "draft":
            inv["status_transitions"]["finalized_at"] = now
        self.store.emit("invoice.paid", inv)
        self.store.emit("invoice.payment_succeeded", inv)
        self._tell(inv, "paid")
        return inv

    def _failed(self, inv: dict[str, Any]) -> None:
        inv.update(attempted=True, attempt_count=inv["attempt_count"] + 1)
        retry = None
        if inv["collection_method"] == "charge_automatically" and inv["auto_advance"]:
            step = inv["attempt_count"] - 1
            if step < len(CARD_RETRY_DAYS):
                retry = self.store.clock.now() + CARD_RETRY_DAYS[step] * DAY
                self.store.schedule(retry, "invoice_retry", inv["id"], str(step))
        inv["next_payment_attempt"] = retry
        self.store.emit("invoice.payment_failed", inv)
        self._tell(inv, "failed")
        if inv["collection_method"] == "charge_automatically" and retry is None \
                and inv["auto_advance"]:
            self._tell(inv, "lapsed")

    def _tell(self, inv: dict[str, Any], what: str) -> None:
        for listener in self.listeners:
            listener(inv, what)

    # -- due transitions -------------------------------------------------------------------
    def _due_finalize(self, invoice_id: str, token: str) -> None:
        inv = self.store.get("invoice", invoice_id)
        if inv["status"] == "draft":
            self.finalize(inv, self.store.get("subscription", inv["subscription"]))

    def _due_retry(self, invoice_id: str, token: str) -> None:
        inv = self.store.get("invoice", invoice_id)
        sub = self.store.get("subscription", inv["subscription"])
        if inv["status"] != "open" or sub["status"] in ("canceled", "incomplete_expired") \
                or str(inv["attempt_count"] - 1) != token:
            return
        pm_id = self._card(sub)
        pi = self.store.get("payment_intent", inv["payment_intent"])
        if pm_id is None or pi["status"] == "succeeded":
            self._failed(inv)
            return
        self.charge(inv, pi, pm_id)

    def _due_overdue(self, invoice_id: str, token: str) -> None:
        inv = self.store.get("invoice", invoice_id)
        if inv["status"] != "open":
            return
        self.store.emit("invoice.overdue", inv)
        self._tell(inv, "overdue")
        self.store.schedule(self.store.clock.now() + OVERDUE_CANCEL_AFTER, "invoice_lapse",
                            invoice_id)

    def _due_lapse(self, invoice_id: str, token: str) -> None:
        inv = self.store.get("invoice", invoice_id)
        if inv["status"] == "open":
            self._tell(inv, "lapsed")

    # -- API -------------------------------------------------------------------------------
    def retrieve(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get("invoice", invoice_id, "invoice")

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {*LIST_FILTERS, "limit", "starting_after", "ending_before",
                                   "expand", "created"})
        return reading.listing(self.store, "invoice", "/v1/invoices", *LIST_FILTERS)(params)

    # -- emulator controls -----------------------------------------------------------------
    def pay_now(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The customer pays: the konbini voucher at ``store``, or with a working card."""
        forms.check_known(params, {"store"})
        inv = self._open(invoice_id)
        if inv["status"] == "draft":
            self.finalize(inv, self.store.get("subscription", inv["subscription"]))
        pi = self.store.get("payment_intent", inv["payment_intent"]) \
            if inv["payment_intent"] else None
        if inv["status"] == "paid" or pi is None:
            return inv
        if pi["status"] == "requires_action":
            self.payments.pay(pi["id"], params)
        else:
            self.payments.attempt(pi, self.catalog.resolve_card("pm_card_visa"))
        return inv

    def lapse_now(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The customer never pays: the voucher expires and dunning ends now."""
        forms.check_known(params, set())
        inv = self._open(invoice_id)
        pi = self.store.objects["payment_intent"].get(inv["payment_intent"] or "")
        if pi is not None and pi["status"] == "requires_action":
            self.payments.expire(pi["id"], {})
        if inv["status"] == "open":
            if inv["collection_method"] == "send_invoice":
                self.store.emit("invoice.overdue", inv)
                self._tell(inv, "overdue")
            self._tell(inv, "lapsed")
        return inv

    def _open(self, invoice_id: str) -> dict[str, Any]:
        inv = self.store.get("invoice", invoice_id, "invoice")
        if inv["status"] not in ("draft", "open"):
            raise invalid(f"Invoice {invoice_id} is {inv['status']}: it cannot be paid now.",
                          code="invoice_not_editable" if inv["status"] != "paid"
                          else "invoice_already_paid")
        return inv
