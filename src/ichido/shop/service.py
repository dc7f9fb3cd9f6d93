"""The shop service: places orders and refunds through the official ``stripe`` SDK.

Every call to Stripe carries an idempotency key derived from our own ids, so a retried request
(ours, the SDK's, or a client's with the same ``Idempotency-Key``) makes one PaymentIntent and
one Refund. Refunds leave through the outbox: the request commits first, the call follows.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import stripe

from ichido import App, Transaction
from ichido.shop import (buyers, checkout, intents, order_view, orders, reaper,
                         refund_requests, stock)
from ichido.shop.catalog import Catalog, Product
from ichido.shop.fees import PricingTable, within_limits
from ichido.shop.mail import MailSender
from ichido.shop.order_request import OrderError, OrderRequest
from ichido.shop.settings import ShopSettings


class Shop:
    def __init__(self, app: App, settings: ShopSettings, catalog: Catalog, pricing: PricingTable,
                 client: stripe.StripeClient) -> None:
        self.app = app
        self.settings = settings
        self.catalog = catalog
        self.pricing = pricing
        self.stripe = client
        self.outbox = app.outbox  # the app's one dispatcher; the shop adds its senders
        self.outbox.add_sender("mail", MailSender(settings))
        self.outbox.add_sender("stripe_refund", self.send_refund)
        self.outbox.add_sender("stripe_cancel_payment", self.send_cancel)

    # -- orders ------------------------------------------------------------------------------

    def check(self, request: OrderRequest) -> tuple[Product, int]:
        product = self.product(request.product)
        amount = product.price * request.quantity
        self.check_method(product, request.payment_method, amount)
        return product, amount

    def product(self, product_id: str) -> Product:
        """A product sold once; a subscription plan is not an order."""
        product = self.catalog.get(product_id)
        if product.kind == "subscription":
            raise OrderError(f"{product_id} is a subscription plan, not sold as an order",
                             code="subscription_plan")
        return product

    def check_method(self, product: Product, method: str, amount: int) -> None:
        """The product takes the method, Stripe takes the amount, and the fee guard agrees."""
        if method not in product.methods:
            raise OrderError(f"{product.id} cannot be paid by {method}",
                             code="method_not_allowed", allowed=list(product.methods))
        if not within_limits(method, amount):
            raise OrderError(f"¥{amount:,} is outside what {method} accepts",
                             code="amount_out_of_range", amount=amount)
        quote = self.pricing.quote(amount, method)
        if quote.exceeds(str(self.settings.max_fee_share)):
            # An answer, not only a refusal: the cheapest other method the product offers.
            found = self.pricing.compare(amount, str(self.settings.max_fee_share),
                                         product.methods).suggestion()
            hint = f"; {found.method} takes ¥{found.fee:,}" if found else ""
            raise OrderError(
                f"{method} would take ¥{quote.fee:,} of ¥{amount:,}"
                f" ({float(quote.fee_share):.1%}), above the {self.settings.max_fee_share:.0%}"
                f" limit{hint}", code="fee_share_exceeded", fee=quote.fee,
                fee_share=float(quote.fee_share), max_fee_share=self.settings.max_fee_share,
                suggested_method=found and found.method, suggested_fee=found and found.fee)

    # -- Stripe Checkout ---------------------------------------------------------------------

    def place_checkout(self, request: OrderRequest, key: str | None) -> dict[str, Any]:
        """Reserve and record, then open a Checkout Session offering every method the product
        takes and the fee guard allows (or those asked for, each checked)."""
        product = self.product(request.product)
        amount = product.price * request.quantity
        offered = []
        for method in request.methods or product.methods:
            try:
                self.check_method(product, method, amount)
            except OrderError:
                if request.methods:  # asked for by name: say why not
                    raise
                continue
            offered.append(method)
        if not offered:
            raise OrderError(f"no payment method is open to {product.id} at ¥{amount:,}",
                             code="no_payment_method", allowed=list(product.methods))
        order_id = self._record_order(request, product, amount, key)
        order = self._order(order_id)
        if order["status"] == "created" and not order["checkout_session"]:
            params = checkout.session_params(
                order, offered, expires_after_days=self.settings.konbini_expires_after_days,
                return_url=self.settings.checkout_return_url)
            try:
                session = self.stripe.v1.checkout.sessions.create(
                    params=params, options={"idempotency_key": f"ichido-checkout-{order_id}"})
            except stripe.StripeError as exc:
                raise OrderError(f"Stripe is not answering ({type(exc).__name__}); retry with"
                                 " the same Idempotency-Key", code="payment_provider_unavailable",
                                 status=502, order=order_id) from exc
            with self.app.database.transaction() as tx:
                tx.execute("UPDATE shop_orders SET checkout_session = ?, checkout_url = ?"
                           " WHERE id = ? AND checkout_session IS NULL",
                           (session.id, session.url, order_id))
        return self._json(order_id)

    def _order(self, order_id: str) -> dict[str, Any]:
        with self.app.database.reading() as tx:
            order = orders.load(tx, order_id)
        assert order is not None
        return order

    def place_order(self, request: OrderRequest, idempotency_key: str | None) -> tuple[int, dict]:
        """Reserve, record, then ask Stripe; a retry with the same key resumes the same order."""
        product, amount = self.check(request)
        order_id = self._record_order(request, product, amount, idempotency_key)
        with self.app.database.reading() as tx:
            order = orders.load(tx, order_id)
        assert order is not None
        status = 200
        if order["status"] in ("created", "failed"):
            # New, or a retry: Stripe answers a retried call with the first answer (a decline
            # stays a decline) under the same idempotency key, and applying it again is a no-op.
            status = self._create_payment(order, request)
        with self.app.database.reading() as tx:
            return status, order_view.to_json(tx, order_id) or {}

    def _record_order(self, request: OrderRequest, product: Product, amount: int,
                      key: str | None) -> str:
        """Insert the order first: the unique key is the check, so two concurrent retries with
        one ``Idempotency-Key`` make one order (the second waits for the first, then finds it)."""
        fingerprint = request.fingerprint()
        order_id = f"ord_{secrets.token_hex(12)}"
        now = time.time()
        with self.app.database.transaction() as tx:
            inserted = tx.execute(
                "INSERT INTO shop_orders (id, product_id, product_name, kind, quantity, amount,"
                " payment_method, email, status, idempotency_key, request_fingerprint,"
                " created_at, updated_at, locale, hold_until)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (order_id, product.id, product.name, product.kind, request.quantity, amount,
                 request.payment_method, request.email, key, fingerprint, now, now,
                 request.locale or self.settings.default_locale,
                 self._hold_until(request.payment_method, now))).rowcount
            if inserted:
                self._reserve(tx, product, request.quantity)  # out of stock rolls it all back
                return order_id
            found = tx.execute("SELECT id, request_fingerprint FROM shop_orders"
                               " WHERE idempotency_key = ?", (key,)).fetchone()
        if found[1] != fingerprint:
            raise OrderError("this Idempotency-Key was used with other parameters",
                             code="idempotency_key_reused", status=409)
        return found[0]

    def _hold_until(self, method: str, now: float) -> float | None:
        """Until when an unpaid order keeps its stock: a bank transfer for the configured hold
        (the mail names the date), a PayPay authorisation for its own; konbini's voucher
        expires at Stripe, a card is answered at once."""
        hold = {"customer_balance": self.settings.transfer_hold_seconds,
                "paypay": self.settings.paypay_hold_seconds}.get(method)
        return None if hold is None else now + hold

    def _reserve(self, tx: Transaction, product: Product, quantity: int) -> None:
        if not stock.reserve(tx, product.id, product.stock, quantity):
            raise OrderError(f"{product.id} is out of stock", code="out_of_stock", status=409)

    def payment_params(self, order: dict[str, Any], request: OrderRequest,
                       customer: str | None = None) -> dict[str, Any]:
        """``payment_intents.create`` for one order, confirmed at once (``intents``)."""
        return intents.params(order, payment_method_id=request.payment_method_id,
                              expires_after_days=self.settings.konbini_expires_after_days,
                              return_url=self.settings.checkout_return_url, customer=customer)

    def _customer(self, order: dict[str, Any]) -> str:
        """The Stripe Customer whose virtual account receives this order's bank transfer:
        the buyer's own (``buyers``), remembered on the order."""
        if order.get("customer"):
            return str(order["customer"])
        customer = buyers.customer_of(self.stripe, self.app.database, order["email"])
        with self.app.database.transaction() as tx:
            tx.execute("UPDATE shop_orders SET customer = ? WHERE id = ? AND customer IS NULL",
                       (customer, order["id"]))
        return customer

    def _create_payment(self, order: dict[str, Any], request: OrderRequest) -> int:
        try:
            customer = (self._customer(order) if order["payment_method"] == "customer_balance"
                        else None)
            params = self.payment_params(order, request, customer)
            pi = self.stripe.v1.payment_intents.create(
                params=params, options={"idempotency_key": f"ichido-order-{order['id']}"})
        except stripe.CardError as exc:
            snapshot = (exc.json_body or {}).get("error", {}).get("payment_intent")
            self._apply_payment(snapshot or {"id": None, "metadata": {"order_id": order["id"]},
                                              "status": "requires_payment_method",
                                              "last_payment_error": {"message": str(exc)},
                                              "payment_method_types": ["card"]})
            return 402
        except stripe.InvalidRequestError as exc:
            self._fail_order(order, exc.user_message or str(exc))
            return 422
        except stripe.StripeError as exc:
            raise OrderError(f"Stripe is not answering ({type(exc).__name__}); retry with the same"
                             " Idempotency-Key", code="payment_provider_unavailable",
                             status=502, order=order["id"]) from exc
        self._apply_payment(pi.to_dict())
        return 200

    def _apply_payment(self, snapshot: dict[str, Any]) -> None:
        with self.app.database.transaction() as tx:
            orders.apply_payment_intent(tx, snapshot)

    def _fail_order(self, order: dict[str, Any], reason: str) -> None:
        with self.app.database.transaction() as tx:
            changed = tx.execute("UPDATE shop_orders SET status = 'failed', failure = ?,"
                                 " updated_at = ? WHERE id = ? AND status = 'created'",
                                 (reason, time.time(), order["id"])).rowcount
            if changed:
                stock.release(tx, order)

    # -- refunds -----------------------------------------------------------------------------

    def request_refund(self, order_id: str, amount: int | None, key: str | None) -> dict[str, Any]:
        """Commit the request and its Stripe call to the outbox together; the call follows."""
        with self.app.database.transaction() as tx:
            answer = refund_requests.record(tx, order_id, amount, key)
        self.outbox.wake.set()
        return answer

    def send_refund(self, key: str, payload: dict[str, Any]) -> None:
        """Outbox sender of ``stripe_refund`` (``refund_requests.send``)."""
        refund_requests.send(self.stripe, self.app.database, key, payload)

    def send_cancel(self, key: str, payload: dict[str, Any]) -> None:
        """Outbox sender: an order past its hold is canceled at Stripe (``reaper``); if the
        buyer paid meanwhile, Stripe refuses, and the intent as it is now decides."""
        try:
            pi = self.stripe.v1.payment_intents.cancel(
                payload["payment_intent"], params={"cancellation_reason": "abandoned"},
                options={"idempotency_key": key})
        except stripe.InvalidRequestError:
            pi = self.stripe.v1.payment_intents.retrieve(payload["payment_intent"])
        self._apply_payment(pi.to_dict())

    # -- konbini vouchers that expired -------------------------------------------------------

    def renew_voucher(self, order_id: str) -> dict[str, Any]:
        """Confirm an expired konbini order's PaymentIntent again: a new voucher, the same order.

        Idempotent: the Stripe key is derived from the attempt it starts, and an order that
        already waits on a live voucher is answered as it is."""
        with self.app.database.reading() as tx:
            order = orders.load(tx, order_id)
            left = None if order is None else stock.available(tx, order["product_id"])
        if order is None:
            raise OrderError(f"no order {order_id}", code="unknown_order", status=404)
        if order["status"] == "awaiting_payment":
            return self._json(order_id)
        if order["payment_method"] != "konbini" or order["status"] != "expired" \
                or not order["payment_intent"] or order["checkout_session"]:
            raise OrderError(f"order {order_id} is {order['status']}: only an expired konbini"
                             " order gets a new voucher", code="not_renewable", status=409)
        if left is not None and left < order["quantity"]:
            raise OrderError(f"{order['product_id']} is out of stock", code="out_of_stock",
                             status=409)
        key = f"ichido-voucher-{order_id}-{order['attempt'] + 1}"
        try:
            pi = self.stripe.v1.payment_intents.confirm(
                order["payment_intent"],
                params=intents.konbini(order, self.settings.konbini_expires_after_days),
                options={"idempotency_key": key})
        except stripe.StripeError as exc:
            raise OrderError(f"Stripe did not issue a new voucher ({type(exc).__name__}):"
                             " retry", code="payment_provider_unavailable", status=502,
                             order=order_id) from exc
        self._apply_payment(pi.to_dict())
        return self._json(order_id)

    def _json(self, order_id: str) -> dict[str, Any]:
        with self.app.database.reading() as tx:
            return order_view.to_json(tx, order_id) or {}

    # -- orders nobody paid for --------------------------------------------------------------

    def reap_unpaid(self, now: float | None = None) -> int:
        return reaper.reap(self.app.database, self.settings.unpaid_order_ttl_seconds, now)

    def run_reaper(self, stop: threading.Event) -> None:
        reaper.run(self.app.database, self.settings.unpaid_order_ttl_seconds, stop)

    def fee_report(self) -> list[dict[str, Any]]:
        """The last 30 days of real fees per method, each with the fee guard's limit: the Shop
        tab's fee chart (``ichido.shop.dashboard``)."""
        from ichido.shop.report import dashboard_rows

        return dashboard_rows(self.stripe, self.settings.max_fee_share)
