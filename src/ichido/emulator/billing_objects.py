"""Builders for Billing and Checkout objects: Customer, Product, Price, Subscription, Invoice,
Checkout Session, field for field as the 2023-08-16 spec (tests/emulator/stripe_openapi) has them.

Stripe's later API versions moved some of these fields (``current_period_*`` onto subscription
items, ``invoice.payment_intent`` into ``invoice.payments``); the builders keep the old names,
which the emulator's logic reads, and ``shapes`` renders each version's shape from them.
"""

from __future__ import annotations

from typing import Any

from ichido.emulator.objects import list_object, new_id


def customer(created: int, *, email: str | None, name: str | None,
             metadata: dict[str, str], default_payment_method: str | None) -> dict[str, Any]:
    return {"id": new_id("cus", 14), "object": "customer", "address": None, "balance": 0,
            "created": created, "currency": None, "default_source": None, "delinquent": False,
            "description": None, "discount": None, "email": email,
            "invoice_prefix": new_id("x", 8)[2:].upper(),
            "invoice_settings": {"custom_fields": None,
                                 "default_payment_method": default_payment_method,
                                 "footer": None, "rendering_options": None},
            "livemode": False, "metadata": metadata, "name": name, "next_invoice_sequence": 1,
            "phone": None, "preferred_locales": [], "shipping": None, "tax_exempt": "none",
            "test_clock": None}


def product(created: int, *, name: str, description: str | None,
            metadata: dict[str, str]) -> dict[str, Any]:
    return {"id": new_id("prod", 14), "object": "product", "active": True, "created": created,
            "default_price": None, "description": description, "features": [], "images": [],
            "livemode": False, "metadata": metadata, "name": name, "package_dimensions": None,
            "shippable": None, "statement_descriptor": None, "tax_code": None,
            "unit_label": None, "updated": created, "url": None}


def price(created: int, *, product_id: str, currency: str, unit_amount: int,
          recurring: dict[str, Any] | None, metadata: dict[str, str],
          nickname: str | None, lookup_key: str | None) -> dict[str, Any]:
    return {"id": new_id("price", 24), "object": "price", "active": True,
            "billing_scheme": "per_unit", "created": created, "currency": currency,
            "custom_unit_amount": None, "livemode": False, "lookup_key": lookup_key,
            "metadata": metadata, "nickname": nickname, "product": product_id,
            "recurring": recurring, "tax_behavior": "unspecified", "tiers_mode": None,
            "transform_quantity": None, "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount, "unit_amount_decimal": str(unit_amount)}


def subscription(created: int, *, customer_id: str, price_obj: dict[str, Any], quantity: int,
                 collection_method: str, days_until_due: int | None,
                 default_payment_method: str | None, payment_method_types: list[str] | None,
                 metadata: dict[str, str], period: tuple[int, int],
                 trial: tuple[int, int] | None) -> dict[str, Any]:
    sub_id = new_id("sub", 24)
    item = {"id": new_id("si", 14), "object": "subscription_item", "billing_thresholds": None,
            "created": created, "current_period_start": period[0],
            "current_period_end": period[1], "metadata": {}, "price": price_obj,
            "quantity": quantity, "subscription": sub_id, "tax_rates": []}
    return {
        "id": sub_id, "object": "subscription", "application": None,
        "application_fee_percent": None, "automatic_tax": {"enabled": False},
        "billing_cycle_anchor": period[0], "billing_thresholds": None, "cancel_at": None,
        "cancel_at_period_end": False, "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection_method, "created": created,
        "currency": price_obj["currency"], "current_period_end": period[1],
        "current_period_start": period[0], "customer": customer_id,
        "days_until_due": days_until_due, "default_payment_method": default_payment_method,
        "default_source": None, "default_tax_rates": [], "description": None, "discount": None,
        "ended_at": None,
        "items": list_object([item], f"/v1/subscription_items?subscription={sub_id}", False),
        "latest_invoice": None, "livemode": False, "metadata": metadata,
        "next_pending_invoice_item_invoice": None, "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {"payment_method_options": None,
                             "payment_method_types": payment_method_types,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None, "pending_setup_intent": None,
        "pending_update": None, "schedule": None, "start_date": created,
        "status": "trialing" if trial else "incomplete", "test_clock": None,
        "transfer_data": None, "trial_end": trial[1] if trial else None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": trial[0] if trial else None,
    }


def invoice(created: int, sub: dict[str, Any], cust: dict[str, Any], *, amount: int,
            reason: str, period: tuple[int, int]) -> dict[str, Any]:
    invoice_id = new_id("in", 24)
    item = sub["items"]["data"][0]
    line = {"id": new_id("il", 24), "object": "line_item", "amount": amount,
            "amount_excluding_tax": amount, "currency": sub["currency"],
            "description": f"{item['quantity']} × {item['price']['nickname'] or 'plan'}",
            "discount_amounts": [], "discountable": True, "discounts": [],
            "livemode": False, "metadata": {},
            "period": {"start": period[0], "end": period[1]}, "price": item["price"],
            "proration": False, "proration_details": {"credited_items": None},
            "quantity": item["quantity"], "subscription": sub["id"],
            "subscription_item": item["id"], "tax_amounts": [], "tax_rates": [],
            "type": "subscription", "unit_amount_excluding_tax": str(item["price"]["unit_amount"])}
    number = f"{cust['invoice_prefix']}-{cust['next_invoice_sequence']:04d}"
    cust["next_invoice_sequence"] += 1
    return {
        "id": invoice_id, "object": "invoice", "account_country": "JP",
        "account_name": "ichido emulator", "account_tax_ids": None, "amount_due": amount,
        "amount_paid": 0, "amount_remaining": amount, "amount_shipping": 0,
        "application": None, "application_fee_amount": None, "attempt_count": 0,
        "attempted": False, "auto_advance": True,
        "automatic_tax": {"enabled": False, "status": None}, "billing_reason": reason,
        "charge": None, "collection_method": sub["collection_method"], "created": created,
        "currency": sub["currency"], "custom_fields": None, "customer": cust["id"],
        "customer_address": None, "customer_email": cust["email"],
        "customer_name": cust["name"], "customer_phone": None, "customer_shipping": None,
        "customer_tax_exempt": "none", "customer_tax_ids": [], "default_payment_method": None,
        "default_source": None, "default_tax_rates": [], "description": None,
        "discount": None, "discounts": [], "due_date": None, "effective_at": None,
        "ending_balance": None, "footer": None, "from_invoice": None,
        "hosted_invoice_url": None, "invoice_pdf": None, "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object([line], f"/v1/invoices/{invoice_id}/lines", False),
        "livemode": False, "metadata": {}, "next_payment_attempt": None, "number": number,
        "on_behalf_of": None, "paid": False, "paid_out_of_band": False,
        "payment_intent": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": sub["payment_settings"][
                                 "payment_method_types"]},
        "period_end": period[1], "period_start": period[0],
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "quote": None, "receipt_number": None, "rendering_options": None,
        "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
        "statement_descriptor": None, "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subscription": sub["id"], "subscription_details": {"metadata": dict(sub["metadata"])},
        "subtotal": amount, "subtotal_excluding_tax": amount, "tax": None, "test_clock": None,
        "total": amount, "total_discount_amounts": [], "total_excluding_tax": amount,
        "total_tax_amounts": [], "transfer_data": None, "webhooks_delivered_at": None,
    }


def checkout_session(created: int, *, amount: int, currency: str, types: list[str],
                     expires_at: int, url: str, fields: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": new_id("cs_test", 58), "object": "checkout.session", "after_expiration": None,
        "allow_promotion_codes": None, "amount_subtotal": amount, "amount_total": amount,
        "automatic_tax": {"enabled": False, "status": None},
        "billing_address_collection": None, "cancel_url": None, "client_reference_id": None,
        "consent": None, "consent_collection": None, "created": created,
        "currency": currency, "currency_conversion": None, "custom_fields": [],
        "custom_text": {"shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": None, "customer_creation": "if_required", "customer_details": None,
        "customer_email": None, "expires_at": expires_at, "invoice": None,
        "invoice_creation": None, "livemode": False, "locale": None, "metadata": {},
        "mode": "payment", "payment_intent": None, "payment_link": None,
        "payment_method_collection": "if_required", "payment_method_options": {},
        "payment_method_types": types, "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "setup_intent": None, "shipping_address_collection": None, "shipping_cost": None,
        "shipping_details": None, "shipping_options": [], "status": "open",
        "submit_type": None, "subscription": None, "success_url": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "url": None,
    }
    obj.update(fields)
    obj["url"] = f"{url}/_emulator/checkout/{obj['id']}"
    return obj


def invoice_payment(created: int, inv: dict[str, Any], pi_id: str) -> dict[str, Any]:
    """One attempt to pay an invoice (since 2025-03-31.basil: ``invoice.payments``)."""
    return {"id": new_id("inpay", 24), "object": "invoice_payment", "amount_paid": None,
            "amount_requested": inv["amount_due"], "created": created,
            "currency": inv["currency"], "invoice": inv["id"], "is_default": True,
            "livemode": False, "payment": {"type": "payment_intent", "payment_intent": pi_id},
            "status": "open", "status_transitions": {"canceled_at": None, "paid_at": None}}
