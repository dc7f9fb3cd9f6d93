"""What each payment method's PaymentIntent asks of Stripe, in one place.

- ``card``: the buyer's PaymentMethod, charged at once;
- ``konbini``: a voucher mailed to the buyer, paid in cash within ``expires_after_days``;
- ``paypay``: a redirect to PayPay, the buyer comes back to ``return_url`` (one-time only,
  at least ¥50; docs.stripe.com/payments/paypay);
- ``customer_balance``: a bank transfer (``jp_bank_transfer``) into the virtual account of the
  buyer's Stripe Customer (``buyers``: one per e-mail, as Stripe gives one account per
  customer); Stripe's reconciliation matches each transfer to that customer's open payments.

Every one is created confirmed, with ``allowed_payment_method_types`` (``payment_method_types``
is refused since 2026-09-30.endive; the response still lists the read-only one).
"""

from __future__ import annotations

from typing import Any

BANK_TRANSFER = {"customer_balance": {"funding_type": "bank_transfer",
                                      "bank_transfer": {"type": "jp_bank_transfer"}}}


def konbini(order: dict[str, Any], expires_after_days: int) -> dict[str, Any]:
    """A konbini confirmation: the buyer's e-mail gets the voucher (and, later, any refund's
    request for bank details)."""
    return {"payment_method_data": {"type": "konbini", "billing_details": {
                "email": order["email"], "name": order["email"]}},
            "payment_method_options": {"konbini": {
                "expires_after_days": expires_after_days,
                "product_description": order["product_name"][:22]}}}


def params(order: dict[str, Any], *, payment_method_id: str | None, expires_after_days: int,
           return_url: str, customer: str | None = None) -> dict[str, Any]:
    """``payment_intents.create`` for one order, confirmed at once."""
    method = order["payment_method"]
    created: dict[str, Any] = {
        "amount": order["amount"], "currency": "jpy", "confirm": True,
        "allowed_payment_method_types": [method],
        "metadata": {"order_id": order["id"], "product": order["product_id"]},
        "description": f"{order['product_name']} × {order['quantity']}",
    }
    if method == "konbini":
        created.update(konbini(order, expires_after_days))
    elif method == "paypay":
        created.update(payment_method_data={"type": "paypay"},
                       return_url=f"{return_url}?order={order['id']}")
    elif method == "customer_balance":
        created.update(customer=customer, payment_method_data={"type": "customer_balance"},
                       payment_method_options=BANK_TRANSFER)
    else:
        created["payment_method"] = payment_method_id or "pm_card_visa"
    return created
