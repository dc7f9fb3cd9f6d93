"""The shop's reason codes: its own vocabulary, apart from ichido's (``ichido.errors``).

The shop answers its buyers, not Stripe, so its codes say what a buyer did wrong or what to
wait for. ``ShopError`` answers only codes of ``SHOP_REASONS``; the type checker does not read
the shop yet, so the refusal is at the answer (``IchidoError.to_json``) and in the test that
walks every raise site.
"""

from __future__ import annotations

from typing import ClassVar, Collection, Literal, get_args

from ichido.errors import IchidoError

ShopCode = Literal[
    # The request itself
    "malformed_json", "too_large", "invalid_request", "invalid_email", "invalid_quantity",
    "invalid_locale", "invalid_amount", "invalid_share",
    # What is asked for
    "unknown_product", "unknown_order", "unknown_subscription", "unknown_method",
    "subscription_plan", "not_a_plan", "not_for_subscriptions", "method_not_allowed",
    "amount_out_of_range",
    "fee_share_exceeded", "no_payment_method", "out_of_stock", "not_refundable",
    "not_renewable", "idempotency_key_reused",
    # Stripe's side
    "card_declined", "payment_provider_unavailable",
]

SHOP_REASONS: dict[ShopCode, str] = {
    "malformed_json": "the body is not valid JSON",
    "too_large": "the body is larger than ICHIDO_ORDER_MAX_BODY",
    "invalid_request": "the body is not a JSON object, or a required field is missing",
    "invalid_email": "the buyer's email address cannot be used in a mail header",
    "invalid_quantity": "quantity is not a whole number from 1 to 100",
    "invalid_locale": "locale is not one of the shop's languages",
    "invalid_amount": "an amount is not a positive whole number of yen, or more than is left",
    "invalid_share": "a fee share is negative or not a number",
    "unknown_product": "no product with this id in the catalogue",
    "unknown_order": "no such order",
    "unknown_subscription": "no such subscription",
    "unknown_method": "no fee rule for this payment method",
    "subscription_plan": "the product is a subscription plan, not sold as an order",
    "not_a_plan": "the product is not a subscription plan",
    "not_for_subscriptions": "the payment method takes one-time payments only (PayPay), or "
                             "the shop does not bill plans by it (bank transfer)",
    "method_not_allowed": "the product cannot be paid by this method",
    "amount_out_of_range": "the amount is outside what the payment method accepts",
    "fee_share_exceeded": "the method's fee would take more of the sale than "
                          "ICHIDO_MAX_FEE_SHARE",
    "no_payment_method": "no payment method is open to the product at this amount",
    "out_of_stock": "not enough stock left",
    "not_refundable": "the order is not paid, so there is nothing to refund",
    "not_renewable": "only an expired konbini order gets a new voucher",
    "idempotency_key_reused": "the Idempotency-Key was used with other parameters",
    "card_declined": "the card was declined",
    "payment_provider_unavailable": "Stripe did not answer; retry with the same Idempotency-Key",
}

_UNLISTED = set(get_args(ShopCode)) ^ set(SHOP_REASONS)
if _UNLISTED:  # a code added to one of the two and not the other fails every import
    raise AssertionError(f"ShopCode and SHOP_REASONS differ: {sorted(_UNLISTED)}")


class ShopError(IchidoError):
    """A refusal of the shop's, with a code from ``SHOP_REASONS``."""

    vocabulary: ClassVar[Collection[str]] = SHOP_REASONS

    def __init__(self, message: str, *, code: ShopCode) -> None:  # type: ignore[override]  # the shop's codes
        super().__init__(message, code=code)  # type: ignore[arg-type]  # the shop's vocabulary
