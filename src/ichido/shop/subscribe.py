"""``POST /subscriptions``: a plan, a buyer and a method in; a Stripe subscription out, made
through the official SDK with idempotency keys derived from our own ids, so a retried request
(ours, the SDK's, a client's with the same ``Idempotency-Key``) makes one customer and one
subscription. A card subscription renews by itself; a konbini one is ``send_invoice`` with
``days_until_due`` (konbini cannot be charged), and each invoice's voucher is mailed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import hashlib
import orjson
import stripe

from ichido.shop import subscriptions
from ichido.shop.catalog import PLAN_METHODS, Product
from ichido.shop.messages import LOCALES
from ichido.shop.order_request import OrderError, buyer_email
from ichido.shop.service import Shop

DAYS_UNTIL_DUE = 3  # a konbini invoice's voucher lives this long, as a one-off voucher does


@dataclass(frozen=True)
class SubscriptionRequest:
    plan: str
    payment_method: str
    email: str
    payment_method_id: str | None = None
    locale: str | None = None

    @classmethod
    def parse(cls, body: Any) -> "SubscriptionRequest":
        if not isinstance(body, dict):
            raise OrderError("the body must be a JSON object", code="invalid_request")
        for field in ("plan", "payment_method", "email"):
            if not isinstance(body.get(field), str):
                raise OrderError(f"{field} is required", code="invalid_request")
        buyer_email(body["email"])
        locale, pm = body.get("locale"), body.get("payment_method_id")
        if locale is not None and locale not in LOCALES:
            raise OrderError(f"locale must be one of {', '.join(LOCALES)}", code="invalid_locale")
        return cls(body["plan"], body["payment_method"], body["email"],
                   pm if isinstance(pm, str) else None, locale)

    def fingerprint(self) -> str:
        return hashlib.sha256(orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)).hexdigest()


def plan_of(shop: Shop, request: SubscriptionRequest) -> Product:
    plan = shop.catalog.get(request.plan)
    if plan.kind != "subscription":
        raise OrderError(f"{plan.id} is not a subscription plan", code="not_a_plan")
    if request.payment_method not in PLAN_METHODS:
        # PayPay takes one-time payments only (Stripe); bank-transfer invoices are not built.
        raise OrderError(f"{request.payment_method} cannot pay a subscription: one-time"
                         f" payments only (a plan is paid by {' or '.join(PLAN_METHODS)})",
                         code="not_for_subscriptions", allowed=list(PLAN_METHODS))
    shop.check_method(plan, request.payment_method, plan.price)  # each invoice pays the fee
    return plan


def subscribe(shop: Shop, request: SubscriptionRequest, key: str | None) -> dict[str, Any]:
    plan = plan_of(shop, request)
    sub_id = _record(shop, request, key)
    with shop.app.database.reading() as tx:
        current = subscriptions.load(tx, sub_id)
    assert current is not None
    if current["stripe_subscription"] is None:
        try:
            made = _create_at_stripe(shop, plan, request, sub_id)
        except stripe.CardError as exc:
            raise OrderError(f"the card was declined: {exc.user_message or exc}",
                             code="card_declined", status=402, subscription=sub_id) from exc
        except stripe.StripeError as exc:
            raise OrderError(f"Stripe is not answering ({type(exc).__name__}); retry with the"
                             " same Idempotency-Key", code="payment_provider_unavailable",
                             status=502, subscription=sub_id) from exc
        with shop.app.database.transaction() as tx:
            subscriptions.apply_subscription(tx, made, at=0, deleted=False,
                                             grace=shop.settings.subscription_grace_seconds)
    return show(shop, sub_id) or {}


def show(shop: Shop, sub_id: str) -> dict[str, Any] | None:
    with shop.app.database.reading() as tx:
        return subscriptions.to_json(tx, sub_id)


def _record(shop: Shop, request: SubscriptionRequest, key: str | None) -> str:
    """The unique key is the check: two concurrent retries make one subscription."""
    sub_id = f"sub_{secrets.token_hex(12)}"
    with shop.app.database.transaction() as tx:
        inserted = tx.execute(
            "INSERT INTO shop_subscriptions (id, plan, email, payment_method, locale, status,"
            " idempotency_key, request_fingerprint, created_at) VALUES (?, ?, ?, ?, ?,"
            " 'created', ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
            (sub_id, request.plan, request.email, request.payment_method,
             request.locale or shop.settings.default_locale, key, request.fingerprint(),
             time.time())).rowcount
        if inserted:
            return sub_id
        found = tx.execute("SELECT id, request_fingerprint FROM shop_subscriptions"
                           " WHERE idempotency_key = ?", (key,)).fetchone()
    if found[1] != request.fingerprint():
        raise OrderError("this Idempotency-Key was used with other parameters",
                         code="idempotency_key_reused", status=409)
    return found[0]


def _price(shop: Shop, plan: Product) -> str:
    """Stripe's recurring Price for the plan, made once and remembered."""
    with shop.app.database.reading() as tx:
        row = tx.execute("SELECT price FROM shop_plan_prices WHERE plan = ? AND amount = ? AND"
                         " period = ?", (plan.id, plan.price, plan.interval)).fetchone()
    if row:
        return row[0]
    price = shop.stripe.v1.prices.create(params={
        "currency": "jpy", "unit_amount": plan.price, "recurring": {"interval": plan.interval},
        "product_data": {"name": plan.name}, "metadata": {"plan": plan.id}},
        options={"idempotency_key": f"ichido-price-{plan.id}-{plan.price}-{plan.interval}"})
    with shop.app.database.transaction() as tx:
        tx.execute("INSERT INTO shop_plan_prices (plan, amount, period, price) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (plan, amount, period) DO NOTHING",
                   (plan.id, plan.price, plan.interval, price.id))
    return price.id


def _create_at_stripe(shop: Shop, plan: Product, request: SubscriptionRequest,
                      sub_id: str) -> dict[str, Any]:
    customer = shop.stripe.v1.customers.create(
        params={"email": request.email, "metadata": {"subscription_id": sub_id}},
        options={"idempotency_key": f"ichido-customer-{sub_id}"})
    params: dict[str, Any] = {
        "customer": customer.id, "items": [{"price": _price(shop, plan)}],
        "metadata": {"subscription_id": sub_id, "plan": plan.id}}
    if plan.trial_days:
        params["trial_period_days"] = plan.trial_days
    if request.payment_method == "konbini":
        params.update(collection_method="send_invoice", days_until_due=DAYS_UNTIL_DUE,
                      payment_settings={"payment_method_types": ["konbini"]})
    else:
        params["default_payment_method"] = request.payment_method_id or "pm_card_visa"
        params["payment_behavior"] = "error_if_incomplete"
    made = shop.stripe.v1.subscriptions.create(
        params=params, options={"idempotency_key": f"ichido-subscription-{sub_id}"})
    return made.to_dict()


class NotAtStripeYet(RuntimeError):
    """A cancellation for a subscription whose Stripe id the shop has not stored yet."""


def cancel_at_stripe(shop: Shop, key: str, payload: dict[str, Any]) -> None:
    """Outbox sender: cancel a subscription whose paid invoice was refunded in full
    (``access``). Stripe's cancel is a DELETE, which takes no idempotency key: a subscription
    already ended is the answer wanted, so it is looked at first, and a resend is harmless."""
    with shop.app.database.reading() as tx:
        row = tx.execute("SELECT stripe_subscription FROM shop_subscriptions WHERE id = ?",
                         (payload["subscription_id"],)).fetchone()
    if row is None or not row[0]:
        raise NotAtStripeYet(f"{payload['subscription_id']} has no Stripe subscription yet")
    if shop.stripe.v1.subscriptions.retrieve(row[0]).status in subscriptions.ENDED:
        return
    shop.stripe.v1.subscriptions.cancel(row[0])
