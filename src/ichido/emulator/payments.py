"""PaymentIntents: create, confirm, cancel, and the konbini voucher's life (paid or expired).

States and events (docs.stripe.com/payments/paymentintents/lifecycle, …/konbini):
card ``pm_card_visa`` → ``succeeded`` (``charge.succeeded``, ``payment_intent.succeeded``);
``pm_card_chargeDeclined`` → 402 ``card_error``/``card_declined``, back to
``requires_payment_method`` with ``last_payment_error`` (``charge.failed``,
``payment_intent.payment_failed``); konbini → ``requires_action`` with
``next_action.konbini_display_details`` (``payment_intent.requires_action``), then paid
(``charge.succeeded``, ``payment_intent.succeeded``) or expired (``requires_payment_method``,
``payment_intent.payment_failed``). Differences: the konbini Charge appears only when the
voucher is paid; no Customer, no manual capture, no automatic payment-method selection beyond
card + konbini.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NoReturn

from ichido.emulator import captures, forms, intent_params, konbini, ledger, methods, objects
from ichido.emulator.errors import StripeError, invalid, missing_param, unexpected_state
from ichido.emulator.fees import Pricing
from ichido.emulator.state import Store, snapshot

STORED = ("shipping", "customer", "confirmation_method", "setup_future_usage",
          "statement_descriptor", "transfer_group")
TAKEN = ("mandate_data",)  # read for its form; the emulator keeps no Mandate objects
CREATE_KEYS = {"amount", "currency", "payment_method_types", "payment_method_options",
               "allowed_payment_method_types", "excluded_payment_method_types",
               "payment_method", "payment_method_data", "metadata", "confirm", "description",
               "receipt_email", "expand", "capture_method", "automatic_payment_methods",
               "return_url", "statement_descriptor_suffix",
               # stored as given (what Stripe's CLI fixtures and stripe-node send)
               *STORED, *TAKEN}
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
# docs.stripe.com/currencies#minimum-and-maximum-charge-amounts, in the smallest unit:
# ¥50 (jpy has no minor unit), $0.50 and €0.50 (two-decimal currencies: cents).
MINIMUM_CHARGE = {"jpy": 50, "usd": 50, "eur": 50, "gbp": 30}
CONFIRM_KEYS = {"payment_method", "payment_method_data", "payment_method_options", "expand",
                "receipt_email", "return_url"}
CANCELABLE = {"requires_payment_method", "requires_confirmation", "requires_action",
              "requires_capture"}
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


class Payments:
    def __init__(self, store: Store, pricing: Pricing) -> None:
        self.store, self.pricing = store, pricing
        # Methods whose outcome comes later (SEPA Direct Debit): type → start(pi, pm, now).
        self.delayed: dict[str, Callable[[dict[str, Any], dict[str, Any], int],
                                         dict[str, Any]]] = {}
        # Told of every payment's outcome (invoices and Checkout follow their intents).
        self.listeners: list[Callable[[dict[str, Any], bool], None]] = []
        store.due_actions.update(konbini_pay=self._due_pay, konbini_expire=self._due_expire)

    # -- API -------------------------------------------------------------------------------
    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, CREATE_KEYS)
        amount = forms.amount(params, "amount", required=True)
        currency = (forms.text(params, "currency", required=True) or "").lower()
        assert amount is not None
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise invalid(f"Invalid currency: {currency[:20]}. Stripe currently supports "
                          "these currencies: jpy, usd, eur, …", param="currency")
        if amount < MINIMUM_CHARGE.get(currency, 50):
            raise invalid(f"Amount must be at least {MINIMUM_CHARGE.get(currency, 50)} in the "
                          f"smallest unit of {currency}", param="amount",
                          code="amount_too_small")
        types, auto = intent_params.types(params, amount, currency)
        capture = forms.text(params, "capture_method") or "automatic_async"
        if capture not in CAPTURE_METHODS:
            raise invalid(f"Invalid capture_method: must be one of {', '.join(CAPTURE_METHODS)}",
                          param="capture_method")
        stored = self._stored(params)
        now = self.store.clock.now()
        options = intent_params.options(types, params, now)
        pm = methods.resolve(self.store, params, now)
        pi = objects.payment_intent(
            amount, currency, types, now, options, capture_method=capture,
            metadata=forms.metadata(params), description=forms.text(params, "description"),
            receipt_email=forms.text(params, "receipt_email"),
            automatic_payment_methods={"allow_redirects": "always", "enabled": True}
            if auto else None,
            allowed_payment_method_types=forms.strings(params, "allowed_payment_method_types")
            or None,
            excluded_payment_method_types=forms.strings(params, "excluded_payment_method_types")
            or None, **stored)
        confirm = forms.boolean(params, "confirm")
        if confirm:  # refuse before creating anything: a refused request leaves no trace
            self._check_method(pi, pm)
        if pm is not None:
            pi.update(payment_method=pm["id"], status="requires_confirmation")
        self.store.add(pi)
        self._keep_return_url(pi, params)
        self.store.emit("payment_intent.created", pi)
        return self._confirm(pi, {}, now) if confirm else pi

    def _keep_return_url(self, pi: dict[str, Any], params: dict[str, Any]) -> None:
        """Where a redirect method (PayPay) sends the buyer back: not a field of the intent."""
        url = forms.text(params, "return_url")
        if url:
            self.store.private.setdefault(pi["id"], {})["return_url"] = url

    def _stored(self, params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        forms.mapping(params, "mandate_data")
        for name in STORED:
            if name not in params:
                continue
            if name == "shipping":
                out[name] = shipping(forms.mapping(params, name))
            else:
                out[name] = forms.text(params, name)
        if out.get("customer"):
            self.store.get("customer", out["customer"], "customer")
        if out.get("confirmation_method") not in (None, "automatic", "manual"):
            raise invalid("Invalid confirmation_method: must be one of automatic, manual",
                          param="confirmation_method")
        return out

    def confirm(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, CONFIRM_KEYS)
        pi = self.store.get("payment_intent", pi_id, "intent")
        if pi["status"] not in CONFIRMABLE:
            raise unexpected_state(
                f"You cannot confirm this PaymentIntent because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                f"be confirmed: {', '.join(CONFIRMABLE)}.", payment_intent=snapshot(pi))
        now = self.store.clock.now()
        options = intent_params.options(pi["payment_method_types"], params, now,
                                       base=snapshot(pi["payment_method_options"]))
        pm = methods.resolve(self.store, params, now)
        self._keep_return_url(pi, params)
        change: dict[str, Any] = {"payment_method_options": options}
        return self._confirm(pi, change | ({"payment_method": pm["id"]} if pm else {}), now)

    def cancel(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        pi = self.store.get("payment_intent", pi_id, "intent")
        reason = forms.text(params, "cancellation_reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer", "abandoned"):
            raise invalid(f"Invalid cancellation_reason: {reason}", param="cancellation_reason")
        if pi["status"] not in CANCELABLE:
            raise unexpected_state(
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                f"be canceled: {', '.join(sorted(CANCELABLE))}.", payment_intent=snapshot(pi))
        pi.update(status="canceled", canceled_at=self.store.clock.now(),
                  cancellation_reason=reason, next_action=None)
        self.store.emit("payment_intent.canceled", pi)
        return pi

    def retrieve(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get("payment_intent", pi_id, "intent")

    # -- emulator controls (the buyer, the clock) ------------------------------------------
    def pay(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The buyer pays the voucher at ``store`` (default FamilyMart)."""
        pi = self._pending_voucher(pi_id)
        chain = forms.text(params, "store") or "familymart"
        if chain not in konbini.STORES:
            raise invalid(f"store must be one of {', '.join(konbini.STORES)}", param="store")
        return self._settle_voucher(pi, chain)

    def expire(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._expire_voucher(self._pending_voucher(pi_id))

    def _pending_voucher(self, pi_id: str) -> dict[str, Any]:
        pi = self.store.get("payment_intent", pi_id, "intent")
        if pi["status"] != "requires_action" or not pi["next_action"]:
            raise unexpected_state(f"PaymentIntent {pi_id} has no open konbini voucher "
                                   f"(status {pi['status']}).")
        return pi

    def _due_pay(self, pi_id: str, token: str) -> None:
        pi = self.store.get("payment_intent", pi_id)
        if self.store.private.get(pi_id, {}).get("voucher") == token \
                and pi["status"] == "requires_action":
            self._settle_voucher(pi, "familymart")

    def _due_expire(self, pi_id: str, token: str) -> None:
        pi = self.store.get("payment_intent", pi_id)
        if self.store.private.get(pi_id, {}).get("voucher") == token \
                and pi["status"] == "requires_action":
            self._expire_voucher(pi)

    # -- transitions -----------------------------------------------------------------------
    def _confirm(self, pi: dict[str, Any], change: dict[str, Any], now: int) -> dict[str, Any]:
        pm_id = change.get("payment_method") or pi["payment_method"]
        pm = self.store.get("payment_method", pm_id, "payment_method") if pm_id else None
        self._check_method({**pi, **change}, pm)
        assert pm is not None
        pi.update(change)
        if pm["type"] == "konbini":
            return self._issue_voucher(pi, pm, now)
        if pm["type"] in self.delayed:
            return self.delayed[pm["type"]](pi, pm, now)
        return self._charge_card(pi, pm, now)

    def _check_method(self, pi: dict[str, Any], pm: dict[str, Any] | None) -> None:
        if pm is None:
            raise missing_param("payment_method")
        if pm["type"] not in pi["payment_method_types"]:
            raise invalid(f"The PaymentMethod provided ({pm['type']}) is not allowed for this "
                          "PaymentIntent.", param="payment_method",
                          code="payment_intent_invalid_parameter")
        if pm["type"] == "konbini":
            konbini.check_amount(pi["amount"], pi["currency"])
            email = pm["billing_details"]["email"]
            number = pi["payment_method_options"]["konbini"]["confirmation_number"]
            if konbini.outcome(email, number) == "reject":
                raise invalid("The confirmation number was rejected.",
                              param="payment_method_options[konbini][confirmation_number]",
                              code="payment_intent_konbini_rejected_confirmation_number")

    def _charge_card(self, pi: dict[str, Any], pm: dict[str, Any], now: int) -> dict[str, Any]:
        test_card = self.store.private.get(pm["id"], {}).get("card")
        if test_card is not None and test_card.then == "authenticate" and \
                not self.store.private.get(pi["id"], {}).get("authenticated"):
            return self._ask_authentication(pi)
        decline = self.store.private.get(pm["id"], {}).get("decline")
        card = {k: pm["card"][k] for k in ("brand", "country", "exp_month", "exp_year",
                                           "fingerprint", "funding", "last4")}
        details = {"type": "card", "card": {**card, "checks": pm["card"]["checks"],
                   "installments": None, "mandate": None, "network": pm["card"]["brand"],
                   "network_token": {"used": False}, "three_d_secure": None, "wallet": None}}
        outcome = objects.outcome("issuer_declined" if decline else "authorized",
                                  reason=decline)
        charge = self.store.add(objects.charge(
            pi, pm, now, status="failed" if decline else "succeeded", details=details,
            outcome=outcome, customer=pi["customer"],
            failure_code="card_declined" if decline else None,
            failure_message="Your card was declined." if decline else None))
        pi["latest_charge"] = charge["id"]
        if decline:
            return self._decline(pi, pm, charge, decline)
        if pi["capture_method"] == "manual":
            return captures.authorize(self.store, pi, charge)
        ledger.charge_transaction(self.store, charge, "card", self.pricing)
        pi.update(status="succeeded", amount_received=pi["amount"], next_action=None,
                  last_payment_error=None)
        self.store.emit("charge.succeeded", charge)
        self.store.emit("payment_intent.succeeded", pi)
        self._tell(pi, succeeded=True)
        return pi

    def _ask_authentication(self, pi: dict[str, Any]) -> dict[str, Any]:
        """3D Secure required (``pm_card_authenticationRequired``): the customer must
        authenticate on the client; no charge yet (docs.stripe.com/testing#regulatory-cards)."""
        pi.update(status="requires_action", last_payment_error=None, next_action={
            "type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}})
        self.store.emit("payment_intent.requires_action", pi)
        return pi

    def authenticate(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The control ``/_emulator/payment_intents/{id}/authenticate``: the buyer passes 3D
        Secure (``result=succeed``, the default: the card is charged) or fails it (``fail``:
        back to ``requires_payment_method``, ``payment_intent.payment_failed``)."""
        forms.check_known(params, {"result"})
        pi = self.store.get("payment_intent", pi_id, "intent")
        if pi["status"] != "requires_action" or \
                (pi["next_action"] or {}).get("type") != "use_stripe_sdk":
            raise unexpected_state(f"PaymentIntent {pi_id} is not waiting for 3D Secure "
                                   f"(status {pi['status']}).")
        result = forms.text(params, "result") or "succeed"
        if result not in ("succeed", "fail"):
            raise invalid("result is succeed or fail.", param="result")
        pm = self.store.get("payment_method", pi["payment_method"])
        if result == "succeed":
            self.store.private.setdefault(pi["id"], {})["authenticated"] = True
            return self._charge_card(pi, pm, self.store.clock.now())
        error = StripeError(402, "card_error", "The provided PaymentMethod has failed "
                            "authentication.", code="payment_intent_authentication_failure",
                            payment_method=snapshot(pm), payment_method_type="card")
        self._failed(pi, error, next_action=None)
        return pi

    def _decline(self, pi: dict[str, Any], pm: dict[str, Any], charge: dict[str, Any],
                 decline_code: str) -> NoReturn:
        error = StripeError(402, "card_error", "Your card was declined.", code="card_declined",
                            decline_code=decline_code, charge=charge["id"],
                            payment_method=snapshot(pm), payment_method_type="card")
        self._failed(pi, error, charge)
        error.extra["payment_intent"] = snapshot(pi)
        raise error

    def _issue_voucher(self, pi: dict[str, Any], pm: dict[str, Any], now: int) -> dict[str, Any]:
        options = pi["payment_method_options"]["konbini"]
        story = konbini.outcome(pm["billing_details"]["email"], options["confirmation_number"])
        expires_at = konbini.expiry(options, now, story)
        token, display = konbini.voucher(self.store.public_url, expires_at,
                                         options["confirmation_number"])
        self.store.vouchers[token] = pi["id"]
        self.store.private[pi["id"]] = {"voucher": token}
        pi.update(status="requires_action", last_payment_error=None, next_action={
            "type": "konbini_display_details", "konbini_display_details": display})
        self.store.emit("payment_intent.requires_action", pi)
        if story in ("pay_later", "pay_now"):
            pay_at = now + (konbini.PAY_DELAY if story == "pay_later" else 0)
            self.store.schedule(pay_at, "konbini_pay", pi["id"], token)
        self.store.schedule(expires_at, "konbini_expire", pi["id"], token)
        return pi

    def _settle_voucher(self, pi: dict[str, Any], chain: str) -> dict[str, Any]:
        pm = self.store.get("payment_method", pi["payment_method"])
        self.store.private.pop(pi["id"], None)
        ledger.intent_paid(self.store, self.pricing, pi, pm,
                           {"type": "konbini", "konbini": {"store": {"chain": chain}}})
        self._tell(pi, succeeded=True)
        return pi

    def _expire_voucher(self, pi: dict[str, Any]) -> dict[str, Any]:
        pm = self.store.get("payment_method", pi["payment_method"])
        self.store.private.pop(pi["id"], None)
        error = invalid("The payment attempt for this PaymentIntent expired: the konbini "
                        "voucher was not paid in time.",
                        code="payment_intent_payment_attempt_expired",
                        payment_method=snapshot(pm), payment_method_type="konbini")
        self._failed(pi, error, next_action=None)
        return pi

    def _failed(self, pi: dict[str, Any], error: StripeError,
                charge: dict[str, Any] | None = None, **reset: Any) -> None:
        """An attempt failed (a decline, failed 3D Secure, an expired voucher): the intent
        goes back to ``requires_payment_method`` carrying ``error``; ``charge.failed`` when
        there was a charge, then ``payment_intent.payment_failed``, and the listeners hear."""
        pi.update(status="requires_payment_method", payment_method=None,
                  last_payment_error=error.payload(), **reset)
        if charge is not None:
            self.store.emit("charge.failed", charge)
        self.store.emit("payment_intent.payment_failed", pi)
        self._tell(pi, succeeded=False)

    def _tell(self, pi: dict[str, Any], *, succeeded: bool) -> None:
        for listener in self.listeners:
            listener(pi, succeeded)

    def tell(self, pi: dict[str, Any], succeeded: bool) -> None:
        """Announce an outcome decided elsewhere (a manual capture)."""
        self._tell(pi, succeeded=succeeded)

    # -- for invoices and Checkout: Stripe's own payments, no API request of the merchant's --
    def open_intent(self, amount: int, types: list[str], *, customer: str | None,
                    description: str | None, metadata: dict[str, str],
                    konbini_expires_at: int | None = None,
                    currency: str = "jpy") -> dict[str, Any]:
        now = self.store.clock.now()
        options = intent_params.options(types, {}, now)
        if konbini_expires_at is not None:
            options["konbini"]["expires_at"] = konbini_expires_at
        pi = self.store.add(objects.payment_intent(
            amount, currency, types, now, options, customer=customer, description=description,
            metadata=metadata))
        self.store.emit("payment_intent.created", pi)
        return pi

    def attempt(self, pi: dict[str, Any], pm_id: str) -> dict[str, Any]:
        """Confirm ``pi`` with ``pm_id``: a decline is an outcome here, not an error."""
        try:
            return self._confirm(pi, {"payment_method": pm_id}, self.store.clock.now())
        except StripeError as error:
            if error.status != 402:
                raise
            return pi

    def konbini_method(self, name: str | None, email: str | None) -> str:
        """A konbini PaymentMethod for the buyer who pays a voucher."""
        pm = methods.resolve(self.store, {"payment_method_data": {
            "type": "konbini", "billing_details": {"name": name or email or "Buyer",
                                                 "email": email or ""}}},
            self.store.clock.now())
        assert pm is not None
        return pm["id"]


def shipping(raw: dict[str, Any]) -> dict[str, Any]:
    """``shipping``: name and address are required by Stripe; stored in its shape."""
    forms.check_known(raw, {"name", "address", "phone", "carrier", "tracking_number"},
                      "shipping")
    forms.text(raw, "name", required=True, param="shipping[name]")
    address = forms.mapping(raw, "address", "shipping[address]")
    if not address:
        raise invalid("Missing required param: shipping[address].", param="shipping[address]",
                      code="parameter_missing")
    return {"address": objects.billing_details({"address": address})["address"],
            "carrier": raw.get("carrier"), "name": raw["name"], "phone": raw.get("phone"),
            "tracking_number": raw.get("tracking_number")}
