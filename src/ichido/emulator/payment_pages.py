"""``/v1/payment_pages/{session}``: the API behind Checkout's hosted page, as Stripe's CLI
drives it to complete a session (``stripe trigger checkout.session.completed``).

Not in Stripe's public reference: the CLI's fixtures ``GET /v1/payment_pages/{id}`` (the page's
state) and ``POST /v1/payment_pages/{id}/confirm`` with ``payment_method`` (a ``pm_…`` made
from a test token) and ``expected_amount`` (the total the buyer saw; a different total is
refused, as Stripe refuses a page that changed under the buyer). Confirming pays the session as
the hosted page does (``checkout.session.completed``). Only the parameters the CLI sends are
taken: the real endpoint's others are unknown here.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator import forms
from ichido.emulator.checkout import Checkout
from ichido.emulator.errors import invalid
from ichido.emulator.state import Store, snapshot

CONFIRM_KEYS = {"payment_method", "expected_amount", "expand"}


class PaymentPages:
    def __init__(self, store: Store, checkout: Checkout) -> None:
        self.store, self.checkout = store, checkout

    def retrieve(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        session = self.store.get("checkout.session", session_id, "session")
        return {**snapshot(session), "object": "checkout.session",
                "line_items": self.checkout.line_items(session_id, {})}

    def confirm(self, session_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, CONFIRM_KEYS)
        session = self.checkout._open(session_id)
        expected = forms.integer(params, "expected_amount")
        if expected is not None and expected != session["amount_total"]:
            raise invalid(f"The expected_amount ({expected}) is not the session's total "
                          f"({session['amount_total']}).", param="expected_amount")
        pm = self.store.get("payment_method",
                            forms.text(params, "payment_method", required=True) or "",
                            "payment_method")
        if pm["type"] not in session["payment_method_types"]:
            raise invalid(f"This session does not take {pm['type']}.", param="payment_method")
        details = pm["billing_details"]
        return self.checkout.pay(session, pm["type"], pm["id"], details["email"],
                                 details["name"])
