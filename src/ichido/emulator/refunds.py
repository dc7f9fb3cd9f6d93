"""Refunds: card refunds succeed at once; konbini refunds wait for the buyer's bank details.

Konbini (docs.stripe.com/payments/konbini/accept-a-payment, "Refunds"): Stripe e-mails the
buyer (the billing e-mail, or ``instructions_email``) for bank details; the refund is
``requires_action`` with ``next_action.display_details {email_sent {email_sent_at,
email_sent_to}, expires_at}``; details given → ``pending`` → ``succeeded``; a bank that returns
the funds → ``requires_action`` again; no details within 45 days → ``failed`` with
``refund.failed``; canceled from ``requires_action`` → ``canceled``. Test bank accounts: routing
1100000 with account 0001234 succeeds; 1111113, 1111116, 3333335, 4444440 fail.
Events (changelog 2024-10-28.acacia: ``refund.created``/``updated``/``failed`` for every refund):
``refund.created`` and ``charge.refunded`` on creation; ``refund.updated`` and
``charge.refund.updated`` on each later status change.
"""

from __future__ import annotations

from typing import Any, Callable

from ichido.emulator import forms, ledger, objects
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, snapshot

CREATE_KEYS = {"payment_intent", "charge", "amount", "reason", "metadata", "expand",
               "instructions_email"}
BANK_DETAILS_TTL = 45 * 86400
FAILING_ACCOUNTS = {"1111113", "1111116", "3333335", "4444440"}
# Methods whose refunds wait for the buyer's bank details (bank transfers: ``bank_transfer``).
WAITS_FOR_BANK_DETAILS = ("konbini", "customer_balance")


class Refunds:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Methods whose refunds settle later, each on its own course (PayPay: ``paypay``):
        # type -> start(refund), which sets the first status and schedules the rest.
        self.later: dict[str, Callable[[dict[str, Any]], None]] = {}
        # What a refund left without bank details becomes, by type (default: failed).
        self.lapses: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        store.due_actions.update(refund_succeed=self._due_succeed, refund_expire=self._due_expire)

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, CREATE_KEYS)
        charge = self._charge(params)
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.",
                          code="charge_already_refunded")
        amount = forms.amount(params, "amount")
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise invalid(f"Refund amount (¥{amount:,}) is greater than unrefunded amount on "
                          f"charge (¥{remaining:,})", param="amount", code="amount_too_large")
        reason = forms.text(params, "reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise invalid(f"Invalid reason: must be one of duplicate, fraudulent, or "
                          f"requested_by_customer", param="reason")
        kind = charge["payment_method_details"]["type"]
        is_konbini = kind in WAITS_FOR_BANK_DETAILS
        refund = objects.refund(charge, amount, self.store.clock.now(),
                                status="requires_action" if is_konbini else "succeeded",
                                reason=reason, metadata=forms.metadata(params))
        if is_konbini:
            email = forms.text(params, "instructions_email") or \
                charge["billing_details"]["email"] or self._customer_email(charge)
            if not email and kind == "customer_balance":
                raise invalid("This refund needs the customer's e-mail to ask for bank "
                              "details: give instructions_email.", param="instructions_email")
            self._ask_for_bank_details(refund, email)
        if kind in self.later:
            self.later[kind](refund)
        refund["balance_transaction"] = ledger.refund_transaction(self.store, refund)
        self.store.add(refund)
        before = snapshot(charge)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.store.emit("refund.created", refund)
        self.store.emit_update("charge.refunded", charge, before)
        return refund

    def retrieve(self, refund_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get("refund", refund_id, "refund")

    def cancel(self, refund_id: str, params: dict[str, Any]) -> dict[str, Any]:
        refund = self._awaiting(refund_id)
        return self._undo(refund, "canceled", "refund.updated")

    def expire(self, refund_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Stripe's test helper ``POST /v1/test_helpers/refunds/{id}/expire``."""
        return self._lapse(self._awaiting(refund_id))

    def bank_details(self, refund_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The buyer submits bank details: ``pending``, then ``succeeded`` (or back to waiting
        when the account is one of Stripe's failing test accounts)."""
        refund = self._awaiting(refund_id)
        account = forms.text(params, "account_number") or "0001234"
        self._move(refund, status="pending", next_action=None)
        if account in FAILING_ACCOUNTS:
            email = refund["instructions_email"]
            before = snapshot(refund)
            self._ask_for_bank_details(refund, email)
            self._announce(refund, before)
        else:
            self.store.schedule(self.store.clock.now(), "refund_succeed", refund["id"])
        return refund

    def _due_succeed(self, refund_id: str, token: str) -> None:
        refund = self.store.get("refund", refund_id)
        if refund["status"] == "pending":
            self._move(refund, status="succeeded")

    def _due_expire(self, refund_id: str, token: str) -> None:
        refund = self.store.get("refund", refund_id)
        action = refund.get("next_action") or {}
        if refund["status"] == "requires_action" and \
                str(action.get("display_details", {}).get("expires_at")) == token:
            self._lapse(refund)

    def _lapse(self, refund: dict[str, Any]) -> dict[str, Any]:
        charge = self.store.get("charge", refund["charge"])
        lapse = self.lapses.get(charge["payment_method_details"]["type"])
        return lapse(refund) if lapse else self._undo(refund, "failed", "refund.failed")

    def succeed(self, refund: dict[str, Any]) -> None:
        """A refund that was settling went through (``refund.updated``)."""
        self._move(refund, status="succeeded")

    def fail(self, refund: dict[str, Any]) -> dict[str, Any]:
        """A refund that was settling failed (``refund.failed``; the money comes back)."""
        return self._undo(refund, "failed", "refund.failed")

    def _customer_email(self, charge: dict[str, Any]) -> str | None:
        customer = self.store.objects["customer"].get(charge.get("customer") or "")
        return (customer or {}).get("email")

    def update(self, refund_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/refunds/{id}``: metadata only (Stripe's RefundUpdateParams)."""
        refund = self.store.get("refund", refund_id, "refund")
        before = snapshot(refund)
        merged = {**refund["metadata"], **forms.metadata(params)}
        refund["metadata"] = {k: v for k, v in merged.items() if v != ""}
        if refund != before:
            self._announce(refund, before)
        return refund

    # -- transitions -----------------------------------------------------------------------
    def _ask_for_bank_details(self, refund: dict[str, Any], email: str | None) -> None:
        now = self.store.clock.now()
        expires_at = now + BANK_DETAILS_TTL
        refund.update(status="requires_action", instructions_email=email, next_action={
            "type": "display_details", "display_details": {
                "email_sent": {"email_sent_at": now, "email_sent_to": email or ""},
                "expires_at": expires_at}})
        self.store.schedule(expires_at, "refund_expire", refund["id"], str(expires_at))

    def _move(self, refund: dict[str, Any], **change: Any) -> None:
        before = snapshot(refund)
        refund.update({k: v for k, v in change.items() if v is not None})
        for key in [k for k, v in change.items() if v is None]:
            refund.pop(key, None)
        self._announce(refund, before)

    def _announce(self, refund: dict[str, Any], before: dict[str, Any]) -> None:
        self.store.emit_update("refund.updated", refund, before)
        self.store.emit_update("charge.refund.updated", refund, before)

    def _undo(self, refund: dict[str, Any], status: str, event_type: str) -> dict[str, Any]:
        """The money did not leave: it comes back to the balance and off the charge."""
        before = snapshot(refund)
        refund.pop("next_action", None)
        refund["status"] = status
        refund["failure_balance_transaction"] = ledger.refund_transaction(
            self.store, refund, reverse=True)
        if status == "failed":
            refund["failure_reason"] = "unknown"
        charge = self.store.get("charge", refund["charge"])
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = False
        self.store.emit_update(event_type, refund, before)
        self.store.emit_update("charge.refund.updated", refund, before)
        return refund

    def _awaiting(self, refund_id: str) -> dict[str, Any]:
        refund = self.store.get("refund", refund_id, "refund")
        if refund["status"] != "requires_action":
            raise invalid(f"Refund {refund_id} is {refund['status']}: only a refund in "
                          f"requires_action can take this action.", code="refund_unexpected_state")
        return refund

    def _charge(self, params: dict[str, Any]) -> dict[str, Any]:
        charge_id, pi_id = forms.text(params, "charge"), forms.text(params, "payment_intent")
        if bool(charge_id) == bool(pi_id):
            raise invalid("Provide exactly one of charge or payment_intent.", param="charge",
                          code="parameter_missing" if not charge_id else None)
        if pi_id:
            pi = self.store.get("payment_intent", pi_id, "payment_intent")
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise invalid(f"This PaymentIntent ({pi_id}) does not have a successful charge "
                              "to refund.", param="payment_intent")
            charge_id = pi["latest_charge"]
        assert charge_id is not None
        charge = self.store.get("charge", charge_id, "charge")
        if charge["status"] != "succeeded":
            raise invalid(f"Charge {charge_id} has not succeeded and cannot be refunded.",
                          param="charge", code="charge_not_refundable")
        return charge
