"""Disputes: a cardholder contests a charge (``pm_card_createDispute``,
``pm_card_createDisputeInquiry``), the merchant updates or closes it.

docs.stripe.com/testing#disputes: the charge succeeds, then a dispute opens at once
(``charge.dispute.created``; the charge's ``disputed`` becomes true): a chargeback is
``needs_response``, an inquiry ``warning_needs_response``. ``POST /v1/disputes/{id}``
(``metadata``, ``evidence``, ``submit``) emits ``charge.dispute.updated``; ``close`` accepts it
(``lost``, or ``warning_closed`` for an inquiry; ``charge.dispute.closed``). Money does not
move for disputes here (no balance transactions for the withdrawal or its fee).
Parameters: ``versions`` refuses what the request's API version lacks; the handlers refuse what
they do not model.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import forms, objects, reading
from ichido.emulator.errors import invalid
from ichido.emulator.payments import Payments
from ichido.emulator.state import Store, snapshot

RESPONSE_DAYS = 7
OPEN = ("needs_response", "warning_needs_response", "under_review", "warning_under_review")


class Disputes:
    def __init__(self, store: Store, payments: Payments) -> None:
        self.store = store
        payments.listeners.append(self._on_payment)

    def _on_payment(self, pi: dict[str, Any], succeeded: bool) -> None:
        charge = self.store.objects["charge"].get(pi.get("latest_charge") or "")
        if not succeeded or charge is None or not charge.get("captured"):
            return
        card = self.store.private.get(charge["payment_method"] or "", {}).get("card")
        if card is None or card.then not in ("dispute", "inquiry"):
            return
        inquiry = card.then == "inquiry"
        now = self.store.clock.now()
        dispute = self.store.add({
            "id": objects.new_id("dp"), "object": "dispute", "amount": charge["amount"],
            "balance_transactions": [], "charge": charge["id"], "created": now,
            "currency": charge["currency"], "evidence": {}, "evidence_details": {
                "due_by": now + RESPONSE_DAYS * 86400, "has_evidence": False,
                "past_due": False, "submission_count": 0},
            "is_charge_refundable": inquiry, "livemode": False, "metadata": {},
            "payment_intent": pi["id"], "payment_method_details": {"type": "card", "card": {
                "brand": charge["payment_method_details"]["card"]["brand"],
                "case_type": "inquiry" if inquiry else "chargeback",
                "network_reason_code": "10.4"}},
            "reason": "fraudulent",
            "status": "warning_needs_response" if inquiry else "needs_response"})
        self.store.get("charge", charge["id"])["disputed"] = True
        self.store.emit("charge.dispute.created", dispute)

    def update(self, dispute_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"metadata", "evidence", "submit", "expand"})
        dispute = self._open(dispute_id)
        before = snapshot(dispute)
        if "metadata" in params:
            merged = {**dispute["metadata"], **forms.metadata(params)}
            dispute["metadata"] = {k: v for k, v in merged.items() if v != ""}
        evidence = forms.mapping(params, "evidence")
        if evidence:
            dispute["evidence"].update({k: v for k, v in evidence.items()
                                        if isinstance(v, str)})
            dispute["evidence_details"]["has_evidence"] = True
        if forms.boolean(params, "submit", default=True) and evidence:
            dispute["evidence_details"]["submission_count"] += 1
            dispute["status"] = "warning_under_review" \
                if dispute["status"].startswith("warning") else "under_review"
        if dispute != before:
            self.store.emit_update("charge.dispute.updated", dispute, before)
        return dispute

    def close(self, dispute_id: str, params: dict[str, Any]) -> dict[str, Any]:
        dispute = self._open(dispute_id)
        before = snapshot(dispute)
        dispute["status"] = "warning_closed" if dispute["status"].startswith("warning") \
            else "lost"
        self.store.emit_update("charge.dispute.closed", dispute, before)
        return dispute

    def retrieve(self, dispute_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get("dispute", dispute_id, "dispute")

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return reading.listing(self.store, "dispute", "/v1/disputes", "charge",
                               "payment_intent")(params)

    def _open(self, dispute_id: str) -> dict[str, Any]:
        dispute = self.store.get("dispute", dispute_id, "dispute")
        if dispute["status"] not in OPEN:
            raise invalid(f"This dispute is already closed ({dispute['status']}).",
                          param="dispute")
        return dispute
