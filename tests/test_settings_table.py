"""Each area's settings are one table (ichido.setting.Setting rows): the table and the settings
class name the same fields, reading and the repr follow it, and every variable it names is
documented where its row says, the README's defaults being the table's own."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from ichido.aws.settings import SETTINGS as AWS, AwsSettings
from ichido.config import SETTINGS as CORE, Settings
from ichido.dashboard.settings import SETTINGS as DASHBOARD, DashboardSettings
from ichido.recovery.settings import SETTINGS as RECOVERY, RecoverySettings
from ichido.setting import Setting
from ichido.shop.settings import SETTINGS as SHOP, ShopSettings
from tests.support import ROOT

AREAS: list[tuple[type, tuple[Setting, ...]]] = [
    (Settings, CORE), (DashboardSettings, DASHBOARD), (AwsSettings, AWS),
    (RecoverySettings, RECOVERY), (ShopSettings, SHOP)]
# Fields that are not read from a variable of their own (a FIFO queue is known by its URL).
DERIVED = {(AwsSettings, "fifo")}
EVERY_ROW = [row for _, table in AREAS for row in table]


@pytest.mark.parametrize(("cls", "table"), AREAS, ids=lambda value: getattr(value, "__name__", ""))
def test_the_table_and_the_settings_class_name_the_same_fields(cls: type, table: Any) -> None:
    fields = {field.name for field in dataclasses.fields(cls)} - {f for c, f in DERIVED if c is cls}
    named = [row.field for row in table]
    assert len(named) == len(set(named)) and set(named) == fields


@pytest.mark.parametrize("row", EVERY_ROW, ids=lambda row: row.env)
def test_every_variable_is_documented_where_its_row_says(row: Setting) -> None:
    page = (ROOT / row.doc).read_text("utf-8")
    assert re.search(rf"\b{row.env}\b(?!_)", page), f"{row.env} is not in {row.doc}"


def readme_rows() -> dict[str, str]:
    """Variable → its default cell, from the README's tables of settings (one cell may list
    several variables and as many defaults: ``A`` / ``B`` | ``1`` / 2)."""
    readme = (ROOT / "README.md").read_text("utf-8")
    found: dict[str, str] = {}
    for first, default in re.findall(r"^\| (`[A-Z_]+`[^|]*) \| ([^|]+) \|", readme, re.MULTILINE):
        names = re.findall(r"`([A-Z_]+)`", first)
        defaults = [part.strip() for part in re.split(r" / |, (?=`|\d)", default)]
        for name, value in zip(names, defaults if len(defaults) == len(names) else [""] * 99):
            found[name] = value
    return found


def test_every_setting_the_readme_tables_name_exists() -> None:
    known = {row.env for row in EVERY_ROW} | {row.file_env for row in EVERY_ROW if row.file_env}
    assert set(readme_rows()) <= known, set(readme_rows()) - known


def test_the_readme_defaults_are_the_settings_defaults() -> None:
    rows, compared = readme_rows(), []
    for cls, table in AREAS:
        defaults = cls()
        for row in table:
            cell = rows.get(row.env, "")
            text = cell.strip("`").replace(",", "") if re.fullmatch(r"`[^`]+`|[\d,]+", cell) else None
            if text is None:
                continue  # unset, derived, required: words, not a value
            assert row.parse(text) == getattr(defaults, row.field), (row.env, cell)
            compared.append(row.env)
    assert {"ICHIDO_TOLERANCE", "ICHIDO_MAX_BODY", "ICHIDO_SEEN_MAX", "ICHIDO_RETRY_CAP",
            "ICHIDO_DB_POOL_SIZE", "ICHIDO_DASHBOARD_SESSION", "ICHIDO_KEEPALIVE"} <= set(compared)


@pytest.mark.parametrize(("cls", "table"), AREAS, ids=lambda value: getattr(value, "__name__", ""))
def test_every_secret_of_the_table_is_hidden_by_the_repr(cls: type, table: Any) -> None:
    secret = "hidden-value-0123456789"
    values = {row.field: (secret,) if row.kind == "list" else secret
              for row in table if row.secret}
    if cls is DashboardSettings:
        values["operators"] = ()
    shown = repr(dataclasses.replace(cls(), **values))
    assert secret not in shown and (not values or "***" in shown), shown


def test_a_variable_is_read_by_its_row() -> None:
    """One reading path: each row's variable, set, reaches its field."""
    assert Settings.from_env({"ICHIDO_CLAIM_BATCH": "7"}).claim_batch == 7
    assert ShopSettings.from_env({"ICHIDO_KONBINI_EXPIRES_AFTER_DAYS": "5"}) \
        .konbini_expires_after_days == 5
    assert RecoverySettings.from_env({"ICHIDO_ALERT_SIGNATURE_SHARE": "0.25"}) \
        .alert_signature_share == 0.25
    assert AwsSettings.from_env({"ICHIDO_QUEUE_URL": "https://q/x.fifo"}).fifo
