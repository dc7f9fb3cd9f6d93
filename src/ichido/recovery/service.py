"""Recovery inside a running service: the alert watcher, the alert sender on the app's outbox,
and the optional reconcile sweep (``ICHIDO_RECONCILE_INTERVAL``), as the app's background loops.

``ichido serve`` and ``ichido worker`` install it (``app.install(Recovery())``); a host app that
runs its own workers can too. Loops run where the workers run (``workers > 0``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ichido.recovery.settings import RecoverySettings

log = logging.getLogger("ichido.recovery")


class Recovery:
    """Recovery as an extension of an ``ichido.App``: ``app.install(Recovery())``, once per app
    (a second install changes nothing). ``settings``: from the environment unless given."""

    def __init__(self, settings: RecoverySettings | None = None) -> None:
        self.settings = settings

    def install(self, app: Any) -> None:
        from ichido.recovery.alerts import Alerts, AlertSender

        settings = self.settings or RecoverySettings.from_env()
        app.outbox.add_sender("alert", AlertSender(settings, lambda: app.database))

        def watch(stop: threading.Event) -> None:
            Alerts(app.inbox, settings).run(stop)

        app.add_loop(watch)
        if settings.reconcile_interval_seconds > 0:
            app.add_loop(lambda stop: sweep(app, settings, stop))


def install(app: Any, settings: RecoverySettings | None = None) -> None:
    """``app.install(Recovery(settings))``: recovery in ``app``, once."""
    app.install(Recovery(settings))


def sweep(app: Any, settings: RecoverySettings, stop: threading.Event) -> None:
    """Reconcile every ``reconcile_interval_seconds`` until ``stop``."""
    from ichido.recovery.alerts import Alerts
    from ichido.recovery.fetch import api_client
    from ichido.recovery.reconcile import Reconciler
    from ichido.loops import poll

    client = api_client(settings)

    def once() -> int:
        reconciler = Reconciler(app.inbox, client,
                                on_found=Alerts(app.inbox, settings).missed_events)
        report = reconciler.run()
        log.info("reconcile sweep: listed %d, stored %d", report.listed, report.reconciled)
        return 0  # sleep the interval whatever was found

    poll("reconcile", once, stop, None, settings.reconcile_interval_seconds)
