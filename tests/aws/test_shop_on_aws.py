"""The shop's konbini and card stories on the SQS layout with PostgreSQL: the emulator (with
duplicated and reordered deliveries) posts to ``ichido aws local``'s Function URL, SQS (moto)
carries each event to the worker, the shop's SQL handlers run unchanged, and its outbox is
dispatched beside them. The same story and checks as tests/shop/test_shop_e2e.py."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from ichido.testing import IchidoProcess
from tests.shop import test_shop_e2e as stories
from tests.shop.conftest import SHOP_APP, ShopWorld
from tests.support import ROOT


class AwsShopWorld(ShopWorld):
    """The shop world with ``ichido aws local`` in place of ``ichido serve``."""

    def __init__(self, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
                 **options: Any) -> None:
        super().__init__(tmp_path, database_url, mode="process", start=False, **options)
        migrated = self.process  # `ichido migrate --app` ran for the shop's tables
        self.process = IchidoProcess(
            ["aws", "local", "--port", str(migrated.port), "--app", SHOP_APP,
             "--retry-after", "0"], env=migrated.env, port=migrated.port, cwd=ROOT,
            name="shop-on-aws")
        self.process.start()
        lines = self.process.log_path.read_text().splitlines()
        exports = next(line for line in lines if line.startswith("environment: "))
        for pair in shlex.split(exports.split(": ", 1)[1]):
            monkeypatch.setenv(*pair.split("=", 1))  # so this process sees the same layout

    @property
    def store(self) -> Any:
        if self._store is None:
            from ichido.aws.admin import open_admin
            from ichido.config import Settings

            self._store = open_admin(Settings.from_env().with_(database_url=self.database_url))
        return self._store


def test_konbini_and_card_stories_on_sqs_and_postgresql(
        postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worlds: list[AwsShopWorld] = []

    def make_world(database_url: str, **options: Any) -> AwsShopWorld:
        worlds.append(AwsShopWorld(tmp_path, database_url, monkeypatch, **options))
        return worlds[-1]

    try:
        stories.test_every_lifecycle_has_each_effect_exactly_once(postgres_url, make_world)
        (world,) = worlds
        assert world.store.sqs.depth() == {"pending": 0, "processing": 0, "dead": 0}
        stats = world.store.stats()
        assert stats["unique"] == stats["processed"] > 0
        assert stats["duplicates_cache"] + stats["duplicates_durable"] > 0  # the chaos arrived
        log = world.process.log_path.read_text()
        assert "layout sqs" in log and "webhook URL" in log
    finally:
        for world in worlds:
            world.close()
