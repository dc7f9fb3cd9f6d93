"""Recovery inside a running service: the alert watcher, the alert sender on the outbox, and
the optional reconcile sweep (``ICHIDO_RECONCILE_INTERVAL``), as the app's background loops.

``ichido serve`` and ``ichido worker`` call ``install(app)``; a host app that runs its own
workers can call it too. Loops run where the workers run (``workers > 0``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ichido.outbox import OutboxDispatcher
from ichido.recovery.settings import RecoverySettings

log = logging.getLogger("ichido.recovery")


def install(app: Any, settings: RecoverySettings | None = None) -> None:
    """Wire recovery into ``app`` (an ``ichido.App``); idempotent. ``settings``: from the
    environment unless given."""
    if getattr(app, "_recovery_installed", False):
        return
    app._recovery_installed = True
    from ichido.recovery.alerts import Alerts, AlertSender

    settings = settings or RecoverySettings.from_env()
    sender = AlertSender(settings, lambda: app.database)
    dispatcher = next((getattr(loop, "__self__", None) for loop in app.background
                       if isinstance(getattr(loop, "__self__", None), OutboxDispatcher)), None)
    if dispatcher is not None:  # one dispatcher per outbox table: it must know every kind
        dispatcher.senders.setdefault("alert", sender)
    else:
        dispatcher = OutboxDispatcher(lambda: app.database, {"alert": sender},
                                      poll_interval=app.settings.poll_interval_seconds)
        app.background.append(dispatcher.run)

    def watch(stop: threading.Event) -> None:
        Alerts(app.inbox, settings).run(stop)

    app.background.append(watch)
    if settings.reconcile_interval_seconds > 0:
        app.background.append(lambda stop: sweep(app, settings, stop))


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
