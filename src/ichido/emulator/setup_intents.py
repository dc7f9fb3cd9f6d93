"""SetupIntents: save a card for later (create, confirm, cancel, retrieve, list).

docs.stripe.com/payments/setupintents/lifecycle: created ``requires_payment_method`` (or
``requires_confirmation`` with a method) (``setup_intent.created``); confirmed with a working
test card: ``succeeded``, the method attached to the customer if one is given
(``payment_method.attached``, ``setup_intent.succeeded``); a card that needs 3D Secure:
``requires_action`` (``setup_intent.requires_action``); a declined card: a 402 ``card_error``
and back to ``requires_payment_method`` with ``last_setup_error``
(``setup_intent.setup_failed``). ``cancel`` from any unfinished state: ``canceled``
(``setup_intent.canceled``). Parameters: ``versions`` refuses what the
request's API version lacks (``payment_method_types`` since ``2026-09-30.endive``, which the
CLI's fixtures still send); the handlers refuse what they do not model.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ichido.emulator import forms, methods, objects, reading
from ichido.emulator.catalog import Catalog
from ichido.emulator.errors import StripeError, invalid, missing_param
from ichido.emulator.state import Store, snapshot

UNFINISHED = ("requires_payment_method", "requires_confirmation", "requires_action")
REASONS = ("abandoned", "duplicate", "requested_by_customer")
USAGES = ("off_session", "on_session")


class SetupIntents:
    def __init__(self, store: Store, catalog: Catalog) -> None:
        self.store, self.catalog = store, catalog

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"allowed_payment_method_types", "confirm", "customer",
                                   "description", "metadata", "payment_method",
                                   "payment_method_data", "return_url", "usage",
                                   "payment_method_types", "expand"})
        customer = forms.text(params, "customer")
        if customer:
            self.store.get("customer", customer, "customer")
        usage = forms.text(params, "usage") or "off_session"
        if usage not in USAGES:
            raise invalid(f"Invalid usage: must be one of {', '.join(USAGES)}", param="usage")
        types = forms.strings(params, "payment_method_types") or \
            forms.strings(params, "allowed_payment_method_types") or ["card"]
        if types != ["card"]:
            raise invalid("The local Stripe sets up cards only.", param="payment_method_types")
        now = self.store.clock.now()
        pm = methods.resolve(self.store, params, now)
        seti_id = objects.new_id("seti")
        seti = self.store.add({
            "id": seti_id, "object": "setup_intent", "application": None,
            "automatic_payment_methods": None, "cancellation_reason": None,
            "client_secret": f"{seti_id}_secret_{objects.new_id('x')[2:]}", "created": now,
            "customer": customer, "description": forms.text(params, "description"),
            "flow_directions": None, "last_setup_error": None, "latest_attempt": None,
            "livemode": False, "mandate": None, "metadata": forms.metadata(params),
            "next_action": None, "on_behalf_of": None,
            "payment_method": pm["id"] if pm else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"mandate_options": None, "network": None,
                                                "request_three_d_secure": "automatic"}},
            "payment_method_types": types, "single_use_mandate": None,
            "status": "requires_confirmation" if pm else "requires_payment_method",
            "usage": usage})
        self.store.emit("setup_intent.created", seti)
        return self._confirm(seti) if forms.boolean(params, "confirm") else seti

    def confirm(self, seti_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"payment_method", "payment_method_data", "return_url",
                                   "expand"})
        seti = self._unfinished(seti_id, "confirm")
        pm = methods.resolve(self.store, params, self.store.clock.now())
        if pm is not None:
            seti["payment_method"] = pm["id"]
        return self._confirm(seti)

    def cancel(self, seti_id: str, params: dict[str, Any]) -> dict[str, Any]:
        seti = self._unfinished(seti_id, "cancel")
        reason = forms.text(params, "cancellation_reason")
        if reason not in (None, *REASONS):
            raise invalid(f"Invalid cancellation_reason: must be one of {', '.join(REASONS)}",
                          param="cancellation_reason")
        seti.update(status="canceled", cancellation_reason=reason, next_action=None)
        self.store.emit("setup_intent.canceled", seti)
        return seti

    def retrieve(self, seti_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, {"expand"})
        return self.store.get("setup_intent", seti_id, "intent")

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return reading.listing(self.store, "setup_intent", "/v1/setup_intents", "customer",
                               "payment_method")(params)

    def _unfinished(self, seti_id: str, action: str) -> dict[str, Any]:
        seti = self.store.get("setup_intent", seti_id, "intent")
        if seti["status"] not in UNFINISHED:
            raise invalid(f"You cannot {action} this SetupIntent because it has a status of "
                          f"{seti['status']}.", code="setup_intent_unexpected_state",
                          setup_intent=snapshot(seti))
        return seti

    def _confirm(self, seti: dict[str, Any]) -> dict[str, Any]:
        if not seti["payment_method"]:
            raise missing_param("payment_method")
        pm = self.store.get("payment_method", seti["payment_method"], "payment_method")
        card = self.store.private.get(pm["id"], {}).get("card")
        if card is not None and card.then == "authenticate":
            seti.update(status="requires_action", next_action={
                "type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}})
            self.store.emit("setup_intent.requires_action", seti)
            return seti
        if card is not None and card.decline and card.on_setup:
            self._fail(seti, pm, card.decline)
        seti.update(status="succeeded", next_action=None, last_setup_error=None)
        if seti["customer"]:
            self.catalog._attach(pm["id"], seti["customer"])
        self.store.emit("setup_intent.succeeded", seti)
        return seti

    def _fail(self, seti: dict[str, Any], pm: dict[str, Any], decline: str) -> NoReturn:
        error = StripeError(402, "card_error", "Your card was declined.", code="card_declined",
                            decline_code=decline, payment_method=snapshot(pm),
                            payment_method_type="card")
        seti.update(status="requires_payment_method", payment_method=None,
                    last_setup_error=error.payload())
        self.store.emit("setup_intent.setup_failed", seti)
        error.extra["setup_intent"] = snapshot(seti)
        raise error
