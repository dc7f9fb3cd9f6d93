"""Settings that would silently switch a protection off, or that no deployment means, are
refused at start with a ConfigError naming the variable."""

from __future__ import annotations

import dataclasses
import math

import pytest

from ichido.config import SETTINGS, Settings
from ichido.errors import ConfigError

# Every numeric setting with an environment variable, and a value of each class to refuse.
BOUNDED = [(row.field, row.env) for row in SETTINGS if row.high is not None]


@pytest.mark.parametrize(("attr", "env"), BOUNDED)
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e30"])
def test_zero_negative_and_absurd_values_are_refused_from_the_environment(
        attr: str, env: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({env: value})
    assert env in caught.value.message or "not a" in caught.value.message


@pytest.mark.parametrize(("attr", "env"), BOUNDED)
@pytest.mark.parametrize("value", [0, -5, math.nan, math.inf, 10**15])
def test_the_same_values_are_refused_when_given_in_code(attr: str, env: str, value: float) -> None:
    with pytest.raises(ConfigError, match=env):
        Settings(**{attr: value}).validated()
    with pytest.raises(ConfigError, match=env):
        Settings().with_(**{attr: value})


def test_tolerance_zero_is_refused_rather_than_accepting_a_signature_from_1970() -> None:
    with pytest.raises(ConfigError, match="ICHIDO_TOLERANCE"):
        Settings.from_env({"ICHIDO_TOLERANCE": "0"})
    with pytest.raises(ConfigError, match="ICHIDO_TOLERANCE"):
        Settings.from_env({"ICHIDO_TOLERANCE": "0s"})


def test_a_lease_too_short_to_hold_any_handler_is_refused() -> None:
    for value in ("0", "0s", "500ms", "0.2"):
        with pytest.raises(ConfigError, match="ICHIDO_LEASE"):
            Settings.from_env({"ICHIDO_LEASE": value})
    assert Settings.from_env({"ICHIDO_LEASE": "1s"}).lease_seconds == 1.0


def test_a_retry_cap_below_its_base_is_refused() -> None:
    with pytest.raises(ConfigError, match="ICHIDO_RETRY_CAP"):
        Settings.from_env({"ICHIDO_RETRY_BASE": "10s", "ICHIDO_RETRY_CAP": "1s"})


@pytest.mark.parametrize("secret", ["whsec_", "whsec_short", "whsec_tab\there_0123456789"])
def test_a_webhook_secret_that_cannot_be_a_signing_secret_is_refused(secret: str) -> None:
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET"):
        Settings.from_env({"STRIPE_WEBHOOK_SECRET": secret})


def test_the_defaults_and_documented_examples_pass() -> None:
    settings = Settings.from_env({"ICHIDO_TOLERANCE": "300s", "ICHIDO_LEASE": "30s",
                                  "ICHIDO_MAX_BODY": "1MiB", "ICHIDO_MAX_HEADER": "32KiB",
                                  "ICHIDO_MAX_CONNECTIONS": "200"})
    assert (settings.tolerance_seconds, settings.max_header_bytes) == (300.0, 32 * 1024)
    assert Settings().validated() == Settings()


def test_every_numeric_setting_is_bounded() -> None:
    """A new knob must say which values it refuses."""
    numeric = {f.name for f in dataclasses.fields(Settings) if f.type in ("int", "float")}
    assert numeric == {attr for attr, _ in BOUNDED}
