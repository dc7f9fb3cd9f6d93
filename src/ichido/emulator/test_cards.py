"""Stripe's test payment methods and tokens by name (docs.stripe.com/testing), and what each does.

``pm_card_*`` names a PaymentMethod, ``tok_*`` a card token (``source=tok_visa``, or
``card[token]=tok_visa`` when creating a PaymentMethod); both clone a fresh card from Stripe's
test card. ``decline`` is the ``decline_code`` every charge of the card gets;
``then`` is what happens after a charge is authorized: ``authenticate`` (3D Secure is required:
the PaymentIntent waits in ``requires_action``), ``dispute`` / ``inquiry`` (the charge succeeds,
then the cardholder disputes it: ``charge.dispute.created``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    decline: str | None = None
    funding: str = "credit"
    then: str | None = None
    on_setup: bool = True  # False: setting it up for later works; only charges decline


_CARDS = {
    "visa": TestCard("visa", "4242"), "visa_debit": TestCard("visa", "5556", funding="debit"),
    "mastercard": TestCard("mastercard", "4444"),
    "mastercard_debit": TestCard("mastercard", "8210", funding="debit"),
    "mastercard_prepaid": TestCard("mastercard", "5100", funding="prepaid"),
    "amex": TestCard("amex", "8431"), "discover": TestCard("discover", "1117"),
    "diners": TestCard("diners", "0004"), "jcb": TestCard("jcb", "0000"),
    "unionpay": TestCard("unionpay", "0005"),
    "chargeDeclined": TestCard("visa", "0002", "generic_decline"),
    "visa_chargeDeclined": TestCard("visa", "0002", "generic_decline"),
    "chargeDeclinedInsufficientFunds": TestCard("visa", "9995", "insufficient_funds"),
    "visa_chargeDeclinedInsufficientFunds": TestCard("visa", "9995", "insufficient_funds"),
    "chargeDeclinedLostCard": TestCard("visa", "9987", "lost_card"),
    "visa_chargeDeclinedLostCard": TestCard("visa", "9987", "lost_card"),
    "chargeDeclinedStolenCard": TestCard("visa", "9979", "stolen_card"),
    "visa_chargeDeclinedStolenCard": TestCard("visa", "9979", "stolen_card"),
    "chargeDeclinedExpiredCard": TestCard("visa", "0069", "expired_card"),
    "chargeDeclinedIncorrectCvc": TestCard("visa", "0127", "incorrect_cvc"),
    "chargeDeclinedProcessingError": TestCard("visa", "0119", "processing_error"),
    "chargeDeclinedFraudulent": TestCard("visa", "0019", "fraudulent"),
    # Attaches to a customer, then every charge fails: a subscription's bad card.
    "chargeCustomerFail": TestCard("visa", "0341", "generic_decline", on_setup=False),
    "authenticationRequired": TestCard("visa", "3184", then="authenticate"),
    "authenticationRequiredOnSetup": TestCard("visa", "3155", then="authenticate"),
    "threeDSecure2Required": TestCard("visa", "3220", then="authenticate"),
    "createDispute": TestCard("visa", "0259", then="dispute"),
    "createDisputeInquiry": TestCard("visa", "2685", then="inquiry"),
    "createDisputeProductNotReceived": TestCard("visa", "2685", then="dispute"),
}
#: ``pm_card_visa`` … and ``tok_visa`` …, every name Stripe's test mode knows here.
TEST_CARDS: dict[str, TestCard] = {
    **{f"pm_card_{name}": card for name, card in _CARDS.items()},
    **{f"tok_{name}": card for name, card in _CARDS.items()},
}
