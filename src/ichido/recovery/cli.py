"""``ichido reconcile`` and ``ichido replay``: flags in, the library called, a report out.

Heavy imports wait until a command runs, so ``ichido --help`` stays quick.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)


def parse_when(text: str | None, *, now: float | None = None) -> int | None:
    """``1764547200``, ``2026-12-01``, ``2026-12-01T09:00:00+09:00`` or an age (``4d``, ``36h``:
    that long ago) → Unix seconds."""
    if text is None:
        return None
    from ichido.config import parse_duration
    from ichido.errors import ConfigError

    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            return int((time.time() if now is None else now) - parse_duration(text))
        except ConfigError:
            raise ConfigError(f"not a time: {text!r} (use 1764547200, 2026-12-01,"
                              " 2026-12-01T09:00:00+09:00, or an age such as 4d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())


def _settings(database_url: str | None) -> Any:
    from ichido.config import Settings

    if database_url is not None:
        os.environ["ICHIDO_DATABASE_URL"] = database_url
    return Settings.from_env()


def reconcile(
    since: Optional[str] = typer.Option(None, help="Look from here instead of the saved cursor"
                                        " (1764547200, 2026-12-01, or an age such as 4d)."),
    types: Optional[List[str]] = typer.Option(None, "--types", "--type",
                                              help="Only these event types (repeat; * allowed)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what is missing; store nothing."),
    account: Optional[str] = typer.Option(None, help="A connected account (acct_…)."),
    include_delivered: bool = typer.Option(False, "--include-delivered",
                                           help="Also take old events Stripe delivered (e.g. of"
                                           " a type the endpoint did not subscribe to)."),
    database_url: Optional[str] = typer.Option(None, "--database-url",
                                               help="Overrides ICHIDO_DATABASE_URL."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store every event Stripe lists that the inbox never got (STRIPE_API_KEY, STRIPE_API_BASE)."""
    from ichido.inbox import open_inbox
    from ichido.recovery.alerts import Alerts
    from ichido.recovery.fetch import api_client
    from ichido.recovery.reconcile import Reconciler

    settings = _settings(database_url)
    inbox = open_inbox(settings)
    try:
        alerts = Alerts(inbox, settings)
        reconciler = Reconciler(inbox, api_client(settings), account=account, types=types or (),
                                include_delivered=include_delivered,
                                on_found=alerts.missed_events)
        report = reconciler.run(since=parse_when(since), dry_run=dry_run)
    finally:
        inbox.close()
    if as_json:
        print(json.dumps(report.to_json()))
        return
    for warning in report.warnings:
        err.print(f"[bold red]WARNING[/bold red] {escape(warning)}", soft_wrap=True)
    verb = "would store" if dry_run else "stored"
    out.print(f"reconcile {escape(report.account)}: listed {report.listed}, {verb}"
              f" {report.reconciled} missed, {report.known} already stored, "
              f"{report.skipped_delivered} old delivered skipped, cursor {report.cursor}")
