"""A stateful local Stripe: the API subset ichido's domain uses, Stripe's idempotency keys, and
a webhook sender with Stripe's signatures, retries and deliberate chaos.

In-process::

    from ichido.emulator import Emulator, EmulatorServer

    emulator = Emulator(webhook_urls=["http://127.0.0.1:8000/webhooks/stripe"],
                        webhook_secrets=["whsec_…"], duplicate_rate=0.3,
                        pricing="my-contract.toml")      # fee rules as data (see fees)
    with EmulatorServer(emulator) as server:        # port 0: a free port
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": server.url})
        ...
        emulator.advance(180)                       # three minutes pass: vouchers get paid
        emulator.settle()                           # wait for due work and deliveries

Stripe's API (``/v1/…``, through the official SDK): PaymentIntents (card test cards, konbini,
PayPay's redirect, bank transfers in Japan: ``paypay``, ``bank_transfer``, ``cash_balance``),
Customer cash balances (retrieve, transactions, ``fund_cash_balance``),
Refunds, Charges, Balance Transactions, PaymentMethods (+ attach), Events (filters, cursors,
30 days), Customers, Products, Prices (one-time and recurring), Subscriptions (create, update,
``DELETE`` to cancel), Invoices (list, retrieve, ``pay``), Invoice Payments (list, retrieve),
Checkout Sessions (payment mode: create, retrieve, list, ``line_items``, ``expire``), Webhook
Endpoints (create with ``api_version``, list, retrieve, update ``disabled``).
For Stripe's own tools (the CLI's ``stripe trigger``, stripe-node; see ``routes.tool_routes``):
manual capture, card sources, Coupons, Plans, product/price/refund updates, deletes,
PaymentMethods (create, update, detach), SetupIntents, Disputes, Invoice Items and hand-made
Invoices, Test Clocks, ``/v1/payment_pages`` and ``POST /v1/events/{id}/retry``.

Stripe's v2 event API (``/v2/…``, JSON, v2 errors; ``v2_http``): ``/v2/core/events`` (list,
retrieve) and ``/v2/core/event_destinations`` (create, list, retrieve, update, delete, disable,
enable, ping). Thin destinations get each change's thin twin (``thin_events``), snapshot ones
the snapshot event; ``generation_failure_rate`` makes Stripe fail to generate events and later
send the health alert (``event_destinations``, ``thin_events``).

Each request is served in its API version (``Stripe-Version``, else the account's default,
``Emulator(api_version=…)``): parameters checked and objects rendered as that version's SDK
types them (``versions``; the shapes that moved are in ``shapes``). Every ``/v1/`` route,
the tools' included, is checked and rendered that way.

Controls (``/_emulator/…``, same API key; they act as the buyer, the bank or the clock):

==============================================  ==================================================
``POST /_emulator/clock/advance`` seconds=N      the clock moves; due work fires (vouchers paid or
                                                 expired, renewals, due dates, trial ends, session
                                                 expiry, webhook retries and Stripe giving up)
``POST /_emulator/payment_intents/{id}/pay``     the buyer pays the konbini voucher (store=lawson…)
``POST /_emulator/payment_intents/{id}/expire``  the voucher expires unpaid
``POST /_emulator/payment_intents/{id}/authenticate``  the buyer passes 3D Secure (a card
                                                 like pm_card_authenticationRequired), or
                                                 fails it (result=fail)
``POST /_emulator/refunds/{id}/bank_details``    the konbini or bank-transfer buyer gives bank
                                                 details (account_number=3333335 fails)
``POST /_emulator/payment_intents/{id}/authorize``  the buyer approves PayPay (result=fail: does
                                                 not)
``POST /_emulator/refunds/{id}/fail``            PayPay refuses a pending refund
``POST /_emulator/invoices/{id}/pay``            the customer pays the invoice now (its voucher
                                                 at store=…, or a working card)
``POST /_emulator/invoices/{id}/lapse``          never paid: the voucher expires, dunning ends,
                                                 the subscription is canceled
``POST /_emulator/checkout_sessions/{id}/complete``  the buyer pays: payment_method_type=card
                                                 (card=pm_card_visa…) or konbini (email, name)
``GET /_emulator/webhook_endpoints``             each endpoint: id (we_emulator0…), url, status,
                                                 reachable, succeeded/failed/gave_up
``POST /_emulator/webhook_endpoints/{id}/disable|enable``  Stripe's endpoint status: a disabled
                                                 endpoint gets no new events, its due retries drop
``POST /_emulator/webhook_endpoints/{id}/down|up``  the receiver unreachable: attempts fail,
                                                 retries go on until Stripe gives up (72 h)
``POST /_emulator/rate_limit`` requests=N        the next N ``/v1/`` requests answer 429
                                                 (``stripe.RateLimitError``), as Stripe's limiter
``GET /_emulator/stats``                         deliveries, retries, duplicates, per endpoint
==============================================  ==================================================

Pages with no key, like Stripe's hosted ones: ``/_emulator/vouchers/{token}`` (a PaymentIntent's
``hosted_voucher_url``), ``/_emulator/checkout/{id}`` (a session's ``url``: GET shows it, a form
POST with payment_method_type=card|konbini is the buyer's choice), and
``/_emulator/hosted_invoices/{id}`` (an invoice's ``hosted_invoice_url``),
``/_emulator/paypay/{token}`` (PayPay's ``redirect_to_url.url``: a form POST of result=succeed|fail
authorises and returns to ``return_url``) and ``/_emulator/bank_transfer_instructions/{id}``
(``hosted_instructions_url``).

It shares nothing with the receiver except ``ichido.signature``, and imports nothing of the shop
(``tests/emulator/test_fees.py`` walks its imports).
"""

from ichido.emulator.emulator import Emulator
from ichido.emulator.server import EmulatorServer, run
from ichido.emulator.endpoints import LIVE_RETRY_DELAYS, TEST_RETRY_DELAYS, Endpoint
from ichido.emulator.webhooks import Chaos

__all__ = ["Chaos", "Emulator", "EmulatorServer", "Endpoint", "LIVE_RETRY_DELAYS",
           "TEST_RETRY_DELAYS", "run"]
