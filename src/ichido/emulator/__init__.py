"""A stateful local Stripe: the API subset ichido's domain uses, Stripe's idempotency keys, and
a webhook sender with Stripe's signatures, retries and deliberate chaos.

In-process::

    from ichido.emulator import Emulator, EmulatorServer

    emulator = Emulator(webhook_urls=["http://127.0.0.1:8000/webhooks/stripe"],
                        webhook_secrets=["whsec_…"], duplicate_rate=0.3)
    with EmulatorServer(emulator) as server:        # port 0: a free port
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": server.url})
        ...
        emulator.advance(180)                       # three minutes pass: vouchers get paid
        emulator.settle()                           # wait for due work and deliveries

It shares nothing with the receiver except ``ichido.signature``.
"""

from ichido.emulator.emulator import Emulator
from ichido.emulator.server import EmulatorServer, run
from ichido.emulator.endpoints import LIVE_RETRY_DELAYS, TEST_RETRY_DELAYS, Endpoint
from ichido.emulator.webhooks import Chaos

__all__ = ["Chaos", "Emulator", "EmulatorServer", "Endpoint", "LIVE_RETRY_DELAYS",
           "TEST_RETRY_DELAYS", "run"]
