"""The dashboard's settings are bounded like the core's: a session that never ends, or a page
that reloads itself every millisecond, is refused at start with the variable's name."""

from __future__ import annotations

import math

import pytest

from ichido.dashboard.settings import SETTINGS, DashboardSettings
from ichido.errors import ConfigError
from tests.support import ROOT

TOKEN = "dashboard-settings-token-0123456789"
BOUNDED = [(row.field, row.env) for row in SETTINGS if row.high is not None]


@pytest.mark.parametrize(("attr", "env"), BOUNDED)
@pytest.mark.parametrize("value", ["0", "500ms", "30d", "99999999999d"])
def test_out_of_range_values_are_refused_from_the_environment(attr: str, env: str,
                                                              value: str) -> None:
    with pytest.raises(ConfigError, match=env):
        DashboardSettings.from_env({"ICHIDO_DASHBOARD_TOKEN": TOKEN, env: value})


@pytest.mark.parametrize(("attr", "env"), BOUNDED)
@pytest.mark.parametrize("value", [0, -5, math.nan, math.inf, 10**15])
def test_the_same_values_are_refused_when_given_in_code(attr: str, env: str,
                                                        value: float) -> None:
    with pytest.raises(ConfigError, match=env):
        DashboardSettings(**{attr: value}).validated()


def test_the_session_length_defaults_to_a_working_day_and_takes_at_most_a_week() -> None:
    assert DashboardSettings.from_env({"ICHIDO_DASHBOARD_TOKEN": TOKEN}).session_seconds == 8 * 3600
    week = DashboardSettings.from_env({"ICHIDO_DASHBOARD_TOKEN": TOKEN,
                                       "ICHIDO_DASHBOARD_SESSION": "7d"})
    assert week.session_seconds == 7 * 86400


def test_the_readme_configuration_table_lists_every_bounded_dashboard_setting() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    table = readme[readme.index("## Configuration"):readme.index("## Reliability")]
    assert all(f"`{env}`" in table for _, env in BOUNDED), table
