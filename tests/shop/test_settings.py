"""The shop's settings: read from the environment once, beside ichido's core settings, which
know nothing of them; checked at start; the API key never shown."""

from __future__ import annotations

import pytest

from ichido.config import Settings
from ichido.errors import ConfigError
from ichido.shop.settings import ShopSettings


def test_every_shop_variable_is_read_by_the_shop_and_none_by_the_core() -> None:
    env = {"STRIPE_API_KEY": "sk_test_x", "STRIPE_API_BASE": "http://127.0.0.1:1",
           "ICHIDO_CATALOG": "c.toml", "ICHIDO_PRICING": "p.toml", "ICHIDO_MAIL_DIR": "m",
           "ICHIDO_SMTP_URL": "smtp://h:25", "ICHIDO_MAIL_FROM": "f@x", "ICHIDO_WAREHOUSE_EMAIL":
           "w@x", "ICHIDO_MAX_FEE_SHARE": "0.25", "ICHIDO_KONBINI_EXPIRES_AFTER_DAYS": "5",
           "ICHIDO_ORDER_MAX_BODY": "2KiB", "ICHIDO_ORDER_UNPAID_TTL": "2h",
           "ICHIDO_SHOP_LOCALE": "en"}
    shop = ShopSettings.from_env(env)
    assert (shop.stripe_api_key, shop.stripe_api_base, shop.catalog_path, shop.pricing_path,
            shop.mail_dir, shop.smtp_url, shop.mail_from, shop.warehouse_email) == (
        "sk_test_x", "http://127.0.0.1:1", "c.toml", "p.toml", "m", "smtp://h:25", "f@x", "w@x")
    assert (shop.max_fee_share, shop.konbini_expires_after_days, shop.order_max_body_bytes,
            shop.unpaid_order_ttl_seconds, shop.default_locale) == (0.25, 5, 2048, 7200.0, "en")
    assert Settings.from_env(env) == Settings()  # the core ignores them all


@pytest.mark.parametrize("name, value", [
    ("ICHIDO_MAX_FEE_SHARE", "1.5"), ("ICHIDO_MAX_FEE_SHARE", "lots"),
    ("ICHIDO_KONBINI_EXPIRES_AFTER_DAYS", "61"), ("ICHIDO_ORDER_MAX_BODY", "10"),
    ("ICHIDO_ORDER_UNPAID_TTL", "soon"), ("ICHIDO_SHOP_LOCALE", "fr")])
def test_a_bad_value_stops_the_start_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        ShopSettings.from_env({name: value})
    assert name in err.value.message or value in err.value.message


def test_the_api_key_and_smtp_password_never_show() -> None:
    shop = ShopSettings(stripe_api_key="sk_test_secret_42", smtp_url="smtp://u:pw-77@h:25")
    shown = repr(shop) + str(shop)
    assert "sk_test_secret_42" not in shown and "pw-77" not in shown


def test_without_an_api_key_the_shop_refuses_to_start() -> None:
    with pytest.raises(ConfigError) as err:
        ShopSettings().require_api_key()
    assert err.value.code == "missing_api_key"


def test_the_subscription_grace_period_is_a_bounded_duration() -> None:
    assert ShopSettings.from_env({}).subscription_grace_seconds == 3 * 86400
    assert ShopSettings.from_env({"ICHIDO_SUBSCRIPTION_GRACE": "36h"}) \
        .subscription_grace_seconds == 36 * 3600
    assert ShopSettings.from_env({"ICHIDO_SUBSCRIPTION_GRACE": "0"}) \
        .subscription_grace_seconds == 0  # lose access as soon as an invoice is late
    for bad in ("61d", "soon"):
        with pytest.raises(ConfigError, match="ICHIDO_SUBSCRIPTION_GRACE|duration"):
            ShopSettings.from_env({"ICHIDO_SUBSCRIPTION_GRACE": bad})


def test_the_wait_for_a_parent_is_a_bounded_duration() -> None:
    assert ShopSettings.from_env({}).parent_wait_seconds == 60.0
    assert ShopSettings.from_env({"ICHIDO_PARENT_WAIT": "2h"}).parent_wait_seconds == 7200.0
    assert ShopSettings.from_env({"ICHIDO_PARENT_WAIT": "0"}).parent_wait_seconds == 0.0
    for bad in ("4d", "-1s", "soon"):
        with pytest.raises(ConfigError, match="ICHIDO_PARENT_WAIT|duration"):
            ShopSettings.from_env({"ICHIDO_PARENT_WAIT": bad})
