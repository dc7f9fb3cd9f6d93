"""The shop as an ichido app: ``ichido serve --app ichido.shop.app:create_app``.

Composition only: it reads the settings, loads the catalogue and the pricing table, and wires
the ``Shop`` service, its webhook handlers, its HTTP routes and its outbox into an ``App``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import stripe

from ichido import App
from ichido.config import Settings
from ichido.outbox import OUTBOX_SCHEMA
from ichido.shop import access, dashboard, events, foreign, subscribe, versions
from ichido.shop.api import routes
from ichido.shop.catalog import audit, load_catalog
from ichido.shop.fees import load_pricing
from ichido.shop.schema import SHOP_SCHEMA
from ichido.shop.service import Shop
from ichido.shop.settings import ShopSettings

EXAMPLE_CATALOG = Path(__file__).with_name("catalog.example.toml")
SCHEMA = [*OUTBOX_SCHEMA, *SHOP_SCHEMA]
log = logging.getLogger("ichido.shop")


def create_app(settings: Settings | None = None, *, workers: int = 1) -> App:
    """The factory that ``--app`` loads: settings from the environment."""
    return create_shop(settings, workers=workers).app


def stripe_client(settings: ShopSettings) -> stripe.StripeClient:
    """The official SDK, pointed at the emulator when ``STRIPE_API_BASE`` says so, pinned to
    the API version the shop is written for (``versions.PINNED``), as Stripe advises: an SDK
    upgrade then cannot change the shapes the shop reads behind its back."""
    return stripe.StripeClient(
        settings.require_api_key(), max_network_retries=2, stripe_version=versions.PINNED,
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None)


def create_shop(settings: Settings | None = None, shop_settings: ShopSettings | None = None,
                *, workers: int = 1) -> Shop:
    settings = settings or Settings.from_env()
    shop_settings = shop_settings or ShopSettings.from_env()
    client = stripe_client(shop_settings)
    app = App(settings, workers=workers, schema=SCHEMA)
    catalog = load_catalog(shop_settings.catalog_path or EXAMPLE_CATALOG)
    pricing = load_pricing(shop_settings.pricing_path)
    for row in audit(catalog, pricing, str(shop_settings.max_fee_share)):
        if row.over_limit:  # checkout will refuse it; say so now, not at the first sale
            log.warning("catalogue: %s at ¥%s by %s would pay %.1f%% in fees (limit %.0f%%):"
                        " checkout will refuse it", row.product_id, f"{row.price:,}", row.method,
                        float(row.fee_share) * 100, shop_settings.max_fee_share * 100)
    shop = Shop(app, shop_settings, catalog, pricing, client)
    grace = shop_settings.subscription_grace_seconds
    span = foreign.retries_span(settings.max_attempts, settings.retry_base_seconds,
                                settings.retry_cap_seconds)
    if span < shop_settings.parent_wait_seconds:
        log.warning("an event waiting for its parent is ignored after the worker's last retry,"
                    " about %.0f s after its first attempt, before ICHIDO_PARENT_WAIT (%.0f s):"
                    " raise ICHIDO_MAX_ATTEMPTS or ICHIDO_RETRY_BASE to wait longer", span,
                    shop_settings.parent_wait_seconds)
    events.register(app, grace, shop_settings.parent_wait_seconds)
    shop.outbox.senders["stripe_cancel_subscription"] = \
        lambda key, payload: subscribe.cancel_at_stripe(shop, key, payload)
    app.add_routes(routes(shop))
    dashboard.register(app, lambda: shop.fee_report())  # the Shop tab, in Japan time
    app.background.append(shop.outbox.run)
    app.background.append(shop.run_reaper)
    app.background.append(lambda stop: access.run(app.database, grace, stop))
    return shop
