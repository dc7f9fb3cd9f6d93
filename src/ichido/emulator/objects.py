"""Builders for the Stripe objects the emulator serves, field for field as the API sends them.

Fields follow Stripe's public OpenAPI spec (2023-08-16, kept in ``tests/emulator/stripe_openapi``)
plus what the SDK's API version adds; a field the spec types as non-nullable is left out rather than set to
``None`` (Stripe omits e.g. ``refund.next_action`` when there is none).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"


def digits(count: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(count))


def billing_details(details: dict[str, Any] | None = None) -> dict[str, Any]:
    details = details or {}
    address = details.get("address") if isinstance(details.get("address"), dict) else {}
    return {
        "address": {k: address.get(k) for k in
                    ("city", "country", "line1", "line2", "postal_code", "state")},
        "email": details.get("email"), "name": details.get("name"), "phone": details.get("phone"),
    }


def payment_method(pm_type: str, created: int, billing: dict[str, Any] | None = None,
                   card: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": new_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": billing_details(billing), "created": created, "customer": None,
        "livemode": False, "metadata": {}, "radar_options": {}, "type": pm_type,
    }
    obj[pm_type] = card if pm_type == "card" else {}
    return obj


def test_card(brand: str, last4: str, funding: str = "credit") -> dict[str, Any]:
    return {"brand": brand, "checks": {"address_line1_check": None,
            "address_postal_code_check": None, "cvc_check": "unchecked"},
            "country": "US", "display_brand": brand, "exp_month": 12, "exp_year": 2034,
            "fingerprint": f"emu{brand}{last4}", "funding": funding, "generated_from": None,
            "last4": last4, "networks": {"available": [brand], "preferred": None},
            "three_d_secure_usage": {"supported": True}, "wallet": None}


def payment_intent(amount: int, currency: str, types: list[str], created: int,
                   options: dict[str, Any], **fields: Any) -> dict[str, Any]:
    pi_id = new_id("pi")
    obj: dict[str, Any] = {
        "id": pi_id, "object": "payment_intent", "allowed_payment_method_types": None,
        "amount": amount, "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": 0, "application": None,
        "application_fee_amount": None, "automatic_payment_methods": None, "canceled_at": None,
        "cancellation_reason": None, "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_{new_id('x')[2:]}", "confirmation_method": "automatic",
        "created": created, "currency": currency, "customer": None, "description": None,
        "excluded_payment_method_types": None, "invoice": None, "last_payment_error": None,
        "latest_charge": None, "livemode": False, "metadata": {}, "next_action": None,
        "on_behalf_of": None, "payment_method": None,
        "payment_method_configuration_details": None, "payment_method_options": options,
        "payment_method_types": types, "processing": None, "receipt_email": None,
        "review": None, "setup_future_usage": None, "shipping": None, "source": None,
        "statement_descriptor": None, "statement_descriptor_suffix": None,
        "status": "requires_payment_method", "transfer_data": None, "transfer_group": None,
    }
    obj.update(fields)
    return obj


def charge(pi: dict[str, Any], pm: dict[str, Any], created: int, *, status: str,
           details: dict[str, Any], outcome: dict[str, Any], **fields: Any) -> dict[str, Any]:
    charge_id = new_id("ch")
    paid = status == "succeeded"
    obj: dict[str, Any] = {
        "id": charge_id, "object": "charge", "amount": pi["amount"],
        "amount_captured": pi["amount"] if paid else 0, "amount_refunded": 0,
        "application": None, "application_fee": None, "application_fee_amount": None,
        "balance_transaction": None, "billing_details": pm["billing_details"],
        "calculated_statement_descriptor": "ICHIDO EMULATOR", "captured": paid,
        "created": created, "currency": pi["currency"], "customer": None,
        "description": pi["description"], "disputed": False,
        "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
        "fraud_details": {}, "livemode": False, "metadata": dict(pi["metadata"]),
        "on_behalf_of": None, "outcome": outcome, "paid": paid, "payment_intent": pi["id"],
        "payment_method": pm["id"], "payment_method_details": details, "radar_options": {},
        "receipt_email": None, "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}", "refunded": False,
        "review": None, "shipping": None, "source": None, "source_transfer": None,
        "statement_descriptor": None, "statement_descriptor_suffix": None, "status": status,
        "transfer_data": None, "transfer_group": None,
    }
    obj.update(fields)
    return obj


def outcome(kind: str, *, reason: str | None = None) -> dict[str, Any]:
    approved = kind == "authorized"
    return {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
            "network_status": "approved_by_network" if approved else "declined_by_network",
            "reason": reason, "risk_level": "normal", "risk_score": 20,
            "seller_message": "Payment complete." if approved else
            "The bank did not return any further details with this decline.", "type": kind}


def balance_transaction(amount: int, currency: str, created: int, source: str, *, kind: str,
                        fee: int, fee_details: list[dict[str, Any]],
                        available_on: int) -> dict[str, Any]:
    return {"id": new_id("txn"), "object": "balance_transaction", "amount": amount,
            "available_on": available_on, "balance_type": "payments", "created": created,
            "currency": currency, "description": None, "exchange_rate": None, "fee": fee,
            "fee_details": fee_details, "net": amount - fee, "reporting_category": kind,
            "source": source, "status": "pending", "type": kind}


def refund(charge_obj: dict[str, Any], amount: int, created: int, *, status: str,
           reason: str | None, metadata: dict[str, str]) -> dict[str, Any]:
    return {"id": new_id("re"), "object": "refund", "amount": amount,
            "balance_transaction": None, "charge": charge_obj["id"], "created": created,
            "currency": charge_obj["currency"], "destination_details": None,
            "metadata": metadata, "payment_intent": charge_obj["payment_intent"],
            "reason": reason, "receipt_number": None, "source_transfer_reversal": None,
            "status": status, "transfer_reversal": None}


def event(event_type: str, snapshot: dict[str, Any], created: int, pending: int,
          request: dict[str, Any], before: dict[str, Any] | None,
          api_version: str) -> dict[str, Any]:
    """An event as the emulator keeps it: ``data.before`` (on an update) is the object's
    old snapshot, from which rendering computes ``previous_attributes`` in each version."""
    data: dict[str, Any] = {"object": snapshot}
    if before is not None:
        data["before"] = before
    return {"id": new_id("evt"), "object": "event", "api_version": api_version,
            "created": created, "data": data, "livemode": False, "pending_webhooks": pending,
            "request": request, "type": event_type}


def list_object(data: list[dict[str, Any]], url: str, has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}
