"""``ichido reconcile`` and ``ichido replay``: flags in, the library called, a report out.

Heavy imports wait until a command runs, so ``ichido --help`` stays quick.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from typing import TYPE_CHECKING, Any, List, Optional

import typer
from rich.text import Text

from ichido.console import err, out, shown

if TYPE_CHECKING:
    from ichido.recovery.replay import Replay, ReplayRecord


def parse_when(text: str | None, *, now: float | None = None) -> int | None:
    """``1764547200``, ``2026-12-01``, ``2026-12-01T09:00:00+09:00`` or an age (``4d``, ``36h``:
    that long ago) → Unix seconds, from 1970 to the year 9999: anything else is a one-line
    error here rather than an overflow deep in a store or the SDK."""
    if text is None:
        return None
    from ichido.config import LATEST_MOMENT
    from ichido.errors import ConfigError

    try:
        seconds = _seconds(text.strip(), time.time() if now is None else now)
    except (OverflowError, ValueError):
        seconds = None
    if seconds is None or not 0 <= seconds <= LATEST_MOMENT:
        raise ConfigError(f"not a time from 1970 to 9999: {text[:40]!r} (use 1764547200,"
                          " 2026-12-01, 2026-12-01T09:00:00+09:00, or an age such as 4d)")
    return seconds


def _seconds(text: str, now: float) -> int | None:
    from ichido.config import parse_duration
    from ichido.errors import ConfigError

    if text.isdigit():
        return int(text) if len(text) <= 20 else None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            return int(now - parse_duration(text))
        except ConfigError:
            return None
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
    thin: Optional[bool] = typer.Option(None, "--thin/--no-thin", help="Walk GET /v2/core/events"
                                        " too (default: when the account has a thin event"
                                        " destination)."),
    include_delivered: bool = typer.Option(False, "--include-delivered",
                                           help="Also take old events Stripe delivered (e.g. of"
                                           " a type the endpoint did not subscribe to)."),
    database_url: Optional[str] = typer.Option(None, "--database-url",
                                               help="Overrides ICHIDO_DATABASE_URL."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store every event Stripe lists that the inbox never got (STRIPE_API_KEY, STRIPE_API_BASE)."""
    from ichido.inbox import sql_inbox
    from ichido.schema import open_inbox
    from ichido.recovery.alerts import Alerts
    from ichido.recovery.fetch import api_client
    from ichido.recovery.reconcile import Reconciler
    from ichido.recovery.settings import RecoverySettings

    since_at = parse_when(since)  # a bad value is refused before anything is opened
    settings = RecoverySettings.from_env()
    client = api_client(settings)
    opened = open_inbox(_settings(database_url))
    try:
        inbox = sql_inbox(opened, "ichido reconcile")
        alerts = Alerts(inbox, settings)
        reconciler = Reconciler(inbox, client, account=account, types=types or (),
                                include_delivered=include_delivered,
                                on_found=alerts.missed_events, thin=thin)
        report = reconciler.run(since=since_at, dry_run=dry_run)
    finally:
        opened.close()
    if as_json:
        print(json.dumps(report.to_json()))
        return
    for warning in report.warnings:
        err.print(Text.assemble(("WARNING", "bold red"), " ", shown(warning)), soft_wrap=True)
    verb = "would store" if dry_run else "stored"
    out.print(Text.assemble(
        "reconcile ", shown(report.account), f": listed {report.listed}, {verb}"
        f" {report.reconciled} missed, {report.known} already stored, "
        f"{report.skipped_delivered} old delivered skipped, cursor {report.cursor}"))


def replay(
    status: Optional[List[str]] = typer.Option(None, "--status", help="dead, ignored, retrying,"
                                               " processed (needs --force) or stale; repeat."),
    types: Optional[List[str]] = typer.Option(None, "--type", help="Event type (repeat; a"
                                              " trailing * matches a prefix)."),
    object_id: Optional[str] = typer.Option(None, "--object", help="Stripe object id, e.g."
                                            " sub_…"),
    since: Optional[str] = typer.Option(None, help="Events created at or after (1764547200,"
                                        " 2026-12-01, or an age such as 4d)."),
    until: Optional[str] = typer.Option(None, help="Events created before."),
    shape: Optional[str] = typer.Option(None, "--shape", help="snapshot, or thin (Stripe's"
                                        " v2.core.event notifications)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what matches; change nothing."),
    force: bool = typer.Option(False, "--force", help="Allow processed events (handlers run"
                               " again)."),
    refetch: bool = typer.Option(False, "--refetch", help="Thin events: read the event and its"
                                 " object from Stripe again, not what was fetched before."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue replay rpl_…"),
    cancel_id: Optional[str] = typer.Option(None, "--cancel", help="Stop replay rpl_… after its"
                                            " current page."),
    show_history: bool = typer.Option(False, "--history", help="List recent replays."),
    actor: Optional[str] = typer.Option(None, help="Who to record (default user@host)."),
    database_url: Optional[str] = typer.Option(None, "--database-url",
                                               help="Overrides ICHIDO_DATABASE_URL."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Send stored events that match back to the workers: paged, resumable, recorded."""
    from ichido.errors import ConfigError
    from ichido.inbox import EventFilter, sql_inbox
    from ichido.inbox.base import SHAPES
    from ichido.schema import open_inbox
    from ichido.recovery import replay as replays

    opened = open_inbox(_settings(database_url))
    try:
        inbox = sql_inbox(opened, "ichido replay")
        if show_history:
            records = [r.to_json() for r in replays.history(inbox)]
            if as_json:
                print(json.dumps(records))
            for r in records if not as_json else ():
                out.print(Text.assemble(
                    shown(r["id"]), " ", shown(r["state"]), " by ", shown(r["actor"]),
                    f": matched {r['matched']}, requeued {r['requeued']}, filter ",
                    shown(json.dumps(r["filter"]))))
            return
        if cancel_id:
            done = replays.cancel(inbox, cancel_id)
            out.print(Text.assemble(shown(cancel_id),
                                    f": {'cancelling' if done else 'not running'}"))
            raise typer.Exit(0 if done else 1)
        if resume:
            job = replays.Replay.resume(inbox, resume)
        else:
            if shape is not None and shape not in SHAPES:
                raise ConfigError(f"--shape is snapshot or thin, not {shape[:20]!r}",
                                  code="bad_filter")
            where = EventFilter(statuses=tuple(status or ()), types=tuple(types or ()),
                                object_id=object_id, since=parse_when(since),
                                until=parse_when(until), shape=shape)
            job = replays.Replay.start(inbox, where, force=force, dry_run=dry_run, actor=actor,
                                       refetch=refetch)
            if force and not as_json:
                err.print(Text.assemble(("note", "yellow"), " ", replays.FORCE_MEANS),
                          soft_wrap=True)
        record = _run_with_progress(job, quiet=as_json)
    finally:
        opened.close()
    if as_json:
        print(json.dumps(record.to_json()))
        return
    verb = "would requeue" if record.dry_run else "requeued"
    out.print(f"replay {record.id} {record.state}: matched {record.matched}, {verb}"
              f" {record.requeued if not record.dry_run else record.matched}")


def _run_with_progress(job: "Replay", *, quiet: bool) -> "ReplayRecord":
    if quiet:
        return job.run()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeRemainingColumn

    columns = (TextColumn("replay {task.fields[job]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("requeued {task.fields[requeued]}"), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("replay", total=job.total(), job=job.record.id,
                                 completed=job.record.matched, requeued=job.record.requeued)
        try:
            return job.run(progress=lambda r: progress.update(
                task, completed=r.matched, requeued=r.requeued))
        except KeyboardInterrupt:
            err.print(f"cancelled: resume with `ichido replay --resume {job.record.id}`")
            raise typer.Exit(130) from None
