"""How applications and extensions join an ``ichido.App``: senders on its one outbox dispatcher,
loops through ``add_loop``, recovery and the dashboard installed once, nothing planted on the app
and nothing found by searching its loops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.routing import Mount

import ichido
from ichido.config import Settings
from ichido.dashboard.mount import Dashboard
from ichido.dashboard.settings import DashboardSettings
from ichido.dashboard.standalone import standalone
from ichido.recovery.service import Recovery, install
from ichido.recovery.settings import RecoverySettings

TOKEN = "extension-test-token-0123456789"


def notice(key: str, payload: dict[str, Any]) -> None:
    """An application's sender (never called here)."""


def running_dispatchers(app: ichido.App) -> list[str]:
    """The threads running an outbox dispatcher's loop, by the name ``start_workers`` gives."""
    return [thread.name for thread in app._threads
            if "OutboxDispatcher.run" in thread.name and thread.is_alive()]


def test_installing_recovery_twice_plants_nothing_on_the_app(settings: Settings) -> None:
    app = ichido.App(settings, workers=0)
    before = set(vars(app))
    install(app)
    install(app)
    assert set(vars(app)) == before


def test_recovery_installed_twice_runs_one_dispatcher_with_every_sender(
        settings: Settings) -> None:
    """The application's senders and recovery's alerts share the app's one dispatcher: one
    dispatcher thread runs, whichever way and however often recovery was installed."""
    app = ichido.App(settings, workers=0)
    app.outbox.add_sender("notice", notice)
    first = app.install(Recovery(RecoverySettings.from_env({})))
    assert app.install(Recovery()) is first  # the second changes nothing
    install(app)
    assert set(app.outbox.senders) == {"notice", "alert"}
    app.start()
    try:
        app.start_workers(1)
        assert running_dispatchers(app) == ["ichido-OutboxDispatcher.run-1"]
        assert [loop for loop in app.loops if getattr(loop, "__self__", None) is app.outbox]
    finally:
        asyncio.run(app.shutdown())
        app.close()


def test_an_app_whose_outbox_has_no_sender_runs_no_dispatcher(settings: Settings) -> None:
    """A store with no outbox sender (say, DynamoDB's, with no outbox table) polls nothing."""
    app = ichido.App(settings, workers=0)
    app.start()
    try:
        app.start_workers(1)
        assert running_dispatchers(app) == []
    finally:
        asyncio.run(app.shutdown())
        app.close()


def test_a_second_sender_for_a_kind_is_refused(settings: Settings) -> None:
    app = ichido.App(settings, workers=0)
    app.outbox.add_sender("notice", notice)
    with pytest.raises(ValueError, match="notice"):
        app.outbox.add_sender("notice", notice)
    assert app.outbox.senders["notice"] is notice


def test_the_dashboard_is_mounted_once_and_the_standalone_page_is_that_one(
        settings: Settings) -> None:
    """``ichido dashboard`` serves the page the app installed, not a second one beside it."""
    on = DashboardSettings.from_env({"ICHIDO_DASHBOARD_TOKEN": TOKEN})
    app = ichido.App(settings, workers=0)
    installed = app.install(Dashboard(on))
    assert app.install(Dashboard(on)) is installed
    mounts = [route for route in app.routes if isinstance(route, Mount)]
    assert [mount.path for mount in mounts] == ["/dashboard"]
    page = standalone(app, on)
    assert [route for route in page.routes if isinstance(route, Mount)] == mounts
    assert [route for route in page.routes if isinstance(route, Mount)][0] is mounts[0]


def test_the_dashboard_is_off_until_installed(settings: Settings,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICHIDO_DASHBOARD_TOKEN", TOKEN)
    app = ichido.App(settings, workers=0)
    assert not [route for route in app.routes if isinstance(route, Mount)]
    app.install(Dashboard())
    assert [route.path for route in app.routes if isinstance(route, Mount)] == ["/dashboard"]
