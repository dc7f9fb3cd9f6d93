"""PayPay: a redirect method for one-time yen payments, and its asynchronous refunds.

Facts (docs.stripe.com/payments/paypay; changelog 2026-09-30.endive, "PayPay payments in
Japan"): one-time payments in JPY only, at least ¥50; no manual capture, no saving the method
(``setup_future_usage``, SetupIntents), no subscriptions; Checkout in payment mode only. The
buyer authorises in PayPay after a redirect (``next_action.type = redirect_to_url``), and
Stripe learns at once whether the payment succeeded or failed. Refunds, full or partial, are
asynchronous (up to 5 minutes): ``pending`` at creation, then ``refund.updated`` when they
succeed or ``refund.failed`` (the amount returns to the Stripe balance).

The emulator's choices, unconfirmed against Stripe's sandbox: the redirect goes to a test page
of this local Stripe (``/_emulator/paypay/{token}``: authorise or fail, then back to
``return_url`` with ``payment_intent``, ``payment_intent_client_secret`` and
``redirect_status``), and ``POST /_emulator/payment_intents/{id}/authorize`` does the same
without a browser; a failed authorisation leaves no charge and returns the intent to
``requires_payment_method`` with ``payment_intent_payment_attempt_failed``; a refund succeeds
``REFUND_DELAY`` seconds after it was made unless ``/_emulator/refunds/{id}/fail`` fails it
first; the error codes of the limits are those Stripe gives konbini's
(``payment_intent_invalid_parameter``, ``amount_too_small``).
"""

from __future__ import annotations

import html
from typing import Any, Callable, Mapping

from ichido.emulator import forms, ledger, objects
from ichido.emulator.errors import StripeError, invalid, missing_param, unexpected_state
from ichido.emulator.fees import Pricing
from ichido.emulator.refunds import Refunds
from ichido.emulator.state import Store, snapshot

MIN_AMOUNT = 50
REFUND_DELAY = 120  # "up to 5 minutes": the emulator's refunds take two
RESULTS = ("succeed", "fail")


def refusal(amount: int, currency: str, params: Mapping[str, Any]) -> StripeError | None:
    """Why PayPay cannot take this payment (None: it can). ``params`` are the intent's, as
    given or as stored: ``capture_method`` and ``setup_future_usage`` are read."""
    if currency != "jpy":
        return invalid(f"The currency provided ({currency}) is invalid. PayPay only supports "
                       "jpy.", param="currency", code="payment_intent_invalid_parameter")
    if amount < MIN_AMOUNT:
        return invalid(f"Amount must be at least ¥{MIN_AMOUNT} for PayPay.", param="amount",
                       code="amount_too_small")
    if params.get("capture_method") == "manual":
        return invalid("PayPay does not support manual capture: use capture_method=automatic "
                       "or automatic_async.", param="capture_method",
                       code="payment_intent_invalid_parameter")
    if params.get("setup_future_usage") not in (None, "", "none"):
        return invalid("PayPay cannot be saved for future payments (setup_future_usage).",
                       param="setup_future_usage", code="payment_intent_invalid_parameter")
    return None


class PayPay:
    def __init__(self, store: Store, pricing: Pricing, refunds: Refunds,
                 tell: Callable[[dict[str, Any], bool], None]) -> None:
        self.store, self.pricing, self.refunds, self.tell = store, pricing, refunds, tell
        self.pages: dict[str, str] = {}  # redirect token -> payment intent id
        store.due_actions.update(paypay_refund=self._due_refund)
        refunds.later["paypay"] = self._refund_started

    # -- the payment -----------------------------------------------------------------------
    def redirect(self, pi: dict[str, Any], pm: dict[str, Any], now: int) -> dict[str, Any]:
        """Confirming: the buyer is sent to PayPay (``requires_action``)."""
        error = refusal(pi["amount"], pi["currency"], pi)
        if error is not None:
            raise error
        return_url = self.store.private.get(pi["id"], {}).get("return_url")
        if not return_url:
            raise missing_param("return_url")
        token = objects.new_id("paypay", 32)
        self.pages[token] = pi["id"]
        self.store.private.setdefault(pi["id"], {})["paypay"] = token
        pi.update(status="requires_action", last_payment_error=None, next_action={
            "type": "redirect_to_url", "redirect_to_url": {
                "url": f"{self.store.public_url}/_emulator/paypay/{token}",
                "return_url": return_url}})
        self.store.emit("payment_intent.requires_action", pi)
        return pi

    def authorize(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The control ``/_emulator/payment_intents/{id}/authorize``: the buyer approves in
        PayPay (``result=succeed``, the default) or does not (``result=fail``)."""
        forms.check_known(params, {"result"})
        pi = self.store.get("payment_intent", pi_id, "intent")
        if pi["status"] != "requires_action" or \
                (pi["next_action"] or {}).get("type") != "redirect_to_url":
            raise unexpected_state(f"PaymentIntent {pi_id} is not waiting for a PayPay "
                                   f"authorisation (status {pi['status']}).")
        result = forms.text(params, "result") or "succeed"
        if result not in RESULTS:
            raise invalid("result is succeed or fail.", param="result")
        self.store.private.get(pi_id, {}).pop("paypay", None)
        pm = self.store.get("payment_method", pi["payment_method"])
        return self._pay(pi, pm) if result == "succeed" else self._fail(pi, pm)

    def _pay(self, pi: dict[str, Any], pm: dict[str, Any]) -> dict[str, Any]:
        ledger.intent_paid(self.store, self.pricing, pi, pm, {"type": "paypay", "paypay": {}},
                           customer=pi["customer"])
        self.tell(pi, True)
        return pi

    def _fail(self, pi: dict[str, Any], pm: dict[str, Any]) -> dict[str, Any]:
        error = invalid("The customer did not approve the PaymentIntent. Provide a new payment "
                        "method to attempt to fulfill this PaymentIntent again.",
                        code="payment_intent_payment_attempt_failed",
                        payment_method=snapshot(pm), payment_method_type="paypay")
        pi.update(status="requires_payment_method", payment_method=None, next_action=None,
                  last_payment_error=error.payload())
        self.store.emit("payment_intent.payment_failed", pi)
        self.tell(pi, False)
        return pi

    def page(self, token: str) -> str | None:
        """The test page the redirect leads to: what the buyer sees instead of PayPay."""
        pi = self.store.objects["payment_intent"].get(self.pages.get(token, ""))
        if pi is None:
            return None
        if self.store.private.get(pi["id"], {}).get("paypay") != token:
            return f"<h1>{pi['id']}</h1><p>Nothing to authorise: status {pi['status']}.</p>"
        buttons = "".join(f"<form method=post><input type=hidden name=result value={result}>"
                          f"<button>{label}</button></form>" for result, label in
                          (("succeed", "支払う (authorize)"), ("fail", "キャンセル (fail)")))
        return (f"<!doctype html><meta charset=utf-8><title>PayPay (test)</title>"
                f"<h1>¥{pi['amount']:,}</h1><p>{html.escape(pi['description'] or '')}</p>"
                f"{buttons}")

    def back_to(self, token: str) -> str | None:
        """Where the buyer returns after the test page: ``return_url`` with Stripe's query."""
        pi = self.store.objects["payment_intent"].get(self.pages.get(token, ""))
        action = (pi or {}).get("next_action") or {}
        url = action.get("redirect_to_url", {}).get("return_url") or \
            self.store.private.get((pi or {}).get("id", ""), {}).get("return_url")
        if pi is None or not url:
            return None
        status = "succeeded" if pi["status"] == "succeeded" else "failed"
        glue = "&" if "?" in url else "?"
        return (f"{url}{glue}payment_intent={pi['id']}&payment_intent_client_secret="
                f"{pi['client_secret']}&redirect_status={status}")

    def intent_of(self, token: str) -> str | None:
        return self.pages.get(token)

    # -- refunds ---------------------------------------------------------------------------
    def _refund_started(self, refund: dict[str, Any]) -> None:
        refund["status"] = "pending"
        self.store.schedule(self.store.clock.now() + REFUND_DELAY, "paypay_refund",
                            refund["id"])

    def _due_refund(self, refund_id: str, token: str) -> None:
        refund = self.store.get("refund", refund_id)
        if refund["status"] == "pending":
            self.refunds.succeed(refund)

    def fail_refund(self, refund_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The control ``/_emulator/refunds/{id}/fail``: PayPay refuses a pending refund
        (``refund.failed``; the amount returns to the balance)."""
        forms.check_known(params, set())
        refund = self.store.get("refund", refund_id, "refund")
        if refund["status"] != "pending":
            raise invalid(f"Refund {refund_id} is {refund['status']}: only a pending refund "
                          "can fail.", code="refund_unexpected_state")
        return self.refunds.fail(refund)
