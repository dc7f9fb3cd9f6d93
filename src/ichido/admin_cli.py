"""``ichido events``, ``ichido dlq``, ``ichido stats`` and ``ichido prune``: the operator's
commands over the stored events. ``ichido.cli`` registers them; each opens the store, reads or
changes it through the inbox's admin operations, and prints (tables, or ``--json`` for scripts).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from ichido.config import Settings, parse_duration
from ichido.console import err, out, shown
from ichido.errors import IchidoError
from ichido.extras import require

if TYPE_CHECKING:
    from ichido.inbox.seams import AdminLog

events_cli = typer.Typer(no_args_is_help=True, help="Inspect stored events.")
dlq_cli = typer.Typer(no_args_is_help=True, help="Dead letters: inspect and replay.")

# Stripe retries for up to three days: the bodies of those events are kept (events show,
# replays, the reconciler's safe window); the ids are kept whatever the window (tombstones).
STRIPE_RETRY_WINDOW = 73 * 3600.0

DatabaseOpt = typer.Option(None, "--database-url", help="Overrides ICHIDO_DATABASE_URL.")

# The store and the queue of an AWS layout, by name (as ``ichido.cli`` finds the applications'
# commands): imported only when that layout is configured, so the core never imports ``aws/``.
AWS_ADMIN = "ichido.aws.admin:open_admin"


def _load(spec: str) -> Any:
    """``module:attribute``, imported now."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@contextlib.contextmanager
def _inbox(database_url: str | None) -> Iterator[AdminLog]:
    """The inbox of the configured store, closed (with its database) when the command ends."""
    from ichido.db import open_database
    from ichido.schema import open_inbox

    settings = Settings.from_env(database_url=database_url)
    if os.environ.get("ICHIDO_QUEUE_URL") or os.environ.get("ICHIDO_AWS_LAYOUT"):
        require("aws", needed_by="ICHIDO_QUEUE_URL or ICHIDO_AWS_LAYOUT is set")
        admin = _load(AWS_ADMIN)(settings)
        try:
            yield admin
        finally:
            admin.close()
        return
    database = open_database(settings)
    try:
        inbox = open_inbox(settings, database)
        try:
            yield inbox
        finally:
            inbox.close()
    finally:
        database.close()


@events_cli.command("list")
def events_list(
    status: Optional[str] = typer.Option(None, help="pending, processing, retrying, processed, "
                                         "ignored or dead."),
    type: Optional[str] = typer.Option(None, "--type", help="Event type, e.g. charge.refunded."),
    limit: int = typer.Option(50, min=1, max=10_000),
    database_url: Optional[str] = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List stored events, newest first."""
    with _inbox(database_url) as inbox:
        records = inbox.list(status=status, type=type, limit=limit)
    _print_records(records, as_json)


@events_cli.command("show")
def events_show(event_id: str, database_url: Optional[str] = DatabaseOpt,
                as_json: bool = typer.Option(False, "--json")) -> None:
    """One event: payload, attempts and every error."""
    with _inbox(database_url) as inbox:
        record = inbox.get(event_id)
    if record is None:
        err.print(Text.assemble("no event ", shown(event_id)))
        raise typer.Exit(1)
    detail = _record_json(record) | {
        "payload": _payload(record.body),
        "failures": [{"attempt": a, "at": _when(t), "error": e} for a, t, e in record.failures],
    }
    if as_json:
        print(json.dumps(detail, indent=2))  # ensure_ascii: no raw control character
        return
    for key in ("id", "type", "status", "attempts", "received_at", "finished_at"):
        out.print(Text.assemble((key, "bold"), ": ", shown(detail[key])), highlight=False)
    for failure in detail["failures"]:
        out.print(Text(f"attempt {failure['attempt']} failed at {failure['at']}", style="red"))
        for line in str(failure["error"]).splitlines():
            out.print(shown(line), highlight=False)
    out.print_json(data=detail["payload"], ensure_ascii=True)


def _payload(body: bytes) -> Any:
    """The stored body as JSON, or, for one stored before bodies were checked, as text; None
    once pruned (the id is kept, the body is not)."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return {"unreadable_body": body.decode("utf-8", "backslashreplace")}


@dlq_cli.command("list")
def dlq_list(limit: int = typer.Option(50, min=1), database_url: Optional[str] = DatabaseOpt,
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Dead events: failed every attempt."""
    with _inbox(database_url) as inbox:
        _print_records(inbox.list(status="dead", limit=limit), as_json)


@dlq_cli.command("retry")
def dlq_retry(event_id: Optional[str] = typer.Argument(None),
              all_: bool = typer.Option(False, "--all", help="Replay every dead event."),
              database_url: Optional[str] = DatabaseOpt) -> None:
    """Give a dead event (or all of them) a fresh set of attempts."""
    if (event_id is None) == (not all_):
        err.print("name one event id, or --all")
        raise typer.Exit(2)
    with _inbox(database_url) as inbox:
        count = inbox.requeue_dead(None if all_ or event_id is None else [event_id])
    out.print(f"requeued {count} dead event(s)")
    if event_id and not count:
        raise typer.Exit(1)


def stats(database_url: Optional[str] = DatabaseOpt,
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Counts: received, unique, duplicates per tier, processed, ignored, retrying, dead."""
    with _inbox(database_url) as inbox:
        numbers = inbox.stats()
    if as_json:
        print(json.dumps(numbers))
        return
    table = Table("count", "value", title="ichido")
    for key, value in numbers.items():
        table.add_row(key, str(value))
    out.print(table)


def prune(older_than: str = typer.Option("30d", help="Age, e.g. 30d (Stripe resends nothing "
                                         "older than 30 days)."),
          database_url: Optional[str] = DatabaseOpt) -> None:
    """Drop the bodies of finished events older than the window; ids and counts are kept."""
    window = parse_duration(older_than)
    if window < STRIPE_RETRY_WINDOW:
        raise IchidoError(f"--older-than {older_than} is shorter than Stripe's 3-day retry window:"
                          " its events' bodies are kept for events show, replays and the reconciler",
                          code="window_too_short")
    with _inbox(database_url) as inbox:
        removed = inbox.prune(window)
    out.print(f"pruned {removed} finished event(s) older than {older_than}")


def _record_json(record: Any) -> dict[str, Any]:
    return {"id": record.id, "type": record.type, "status": record.status,
            "attempts": record.attempts, "object_id": record.object_id,
            "received_at": _when(record.received_at), "finished_at": _when(record.finished_at),
            "last_error": (record.last_error or "").strip().splitlines()[-1:] or None}


def _print_records(records: list[Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps([_record_json(r) for r in records]))
        return
    ids = [shown(record.id) for record in records]
    table = Table("type", "status", "attempts", "received", "last error")
    # The id is what an operator copies into ``dlq retry``: never folded, never cut. The
    # other columns fold; a terminal too narrow for the id gets a wider line, which it wraps.
    for column in table.columns:
        column.overflow = "fold"
    table.columns.insert(0, Column("id", no_wrap=True, overflow="ignore",
                                   min_width=max((len(i) for i in ids), default=2)))
    for record, event_id in zip(records, ids):
        row = _record_json(record)
        table.add_row(event_id, shown(row["type"]), shown(row["status"]),
                      shown(row["attempts"]), shown(row["received_at"]),
                      shown((row["last_error"] or [""])[0][:60]))
    needed = Measurement.get(out, out.options.update_width(1_000_000), table).minimum
    width = out.width
    out.width = max(width, needed)  # print's own ``width`` can only narrow
    try:
        out.print(table, crop=False)
    finally:
        out.width = width


def _when(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="seconds")
