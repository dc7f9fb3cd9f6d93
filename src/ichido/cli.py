"""The ``ichido`` command: parse flags, call the library, print. No logic of its own lives here."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import importlib
import json
import logging
import os
import sys
import threading
from typing import Any, Iterator, Optional

import click
import typer
import typer.main
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from ichido.config import Settings, parse_duration, redact_url
from ichido.errors import IchidoError, StorageUnavailable

# The example shop's and the local Stripe's commands, by name: imported only when one is run
# (or help lists them), so the core imports neither (tests/test_imports.py checks it).
APPLICATION_COMMANDS = {
    "orders": "ichido.shop.cli:orders_cli",
    "fees": "ichido.shop.cli:fees_cli",
    "demo": "ichido.shop.cli:demo",
    "emulator": "ichido.emulator.cli:emulator",
    "reconcile": "ichido.recovery.cli:reconcile",  # recovery (issue 13): core, loaded lazily
    "replay": "ichido.recovery.cli:replay",
    "aws": "ichido.aws.cli:aws_cli",  # needs the ichido[aws] extra (boto3, mangum, moto)
}


class LazyGroup(TyperGroup):
    """The ``ichido`` group: its own commands, plus ``APPLICATION_COMMANDS`` loaded on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        own = super().list_commands(ctx)
        return [*own, *(name for name in APPLICATION_COMMANDS if name not in own)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in APPLICATION_COMMANDS:
            self.add_command(_load_command(cmd_name, APPLICATION_COMMANDS[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


def _load_command(name: str, spec: str) -> click.Command:
    """``module:attribute``, a ``typer.Typer`` or a plain function, as a click command."""
    module_name, _, attribute = spec.partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(target, typer.Typer):
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        target = single
    command = typer.main.get_command(target)
    command.name = name
    return command


cli = typer.Typer(cls=LazyGroup, no_args_is_help=True, add_completion=False,
                  help="Receive Stripe webhooks and apply every event's effects exactly once.")
events_cli = typer.Typer(no_args_is_help=True, help="Inspect stored events.")
dlq_cli = typer.Typer(no_args_is_help=True, help="Dead letters: inspect and replay.")
cli.add_typer(events_cli, name="events")
cli.add_typer(dlq_cli, name="dlq")
out = Console()
err = Console(stderr=True)

# Stripe retries for up to three days: the bodies of those events are kept (events show,
# replays, the reconciler's safe window); the ids are kept whatever the window (tombstones).
STRIPE_RETRY_WINDOW = 73 * 3600.0

DatabaseOpt = typer.Option(None, "--database-url", help="Overrides ICHIDO_DATABASE_URL.")
AppOpt = typer.Option(None, "--app", help="module:attribute of your ichido.App (handlers).")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cli()
    except IchidoError as exc:  # one line, never wrapped: scripts and log lines grep for it
        err.print(Text.assemble(("error", "red"), " ", shown(f"[{exc.code}] {exc.message}")),
                  soft_wrap=True)
        sys.exit(2)


def shown(value: object) -> Text:
    """A stored string as the operator's terminal may print it: plain text (no markup), and
    every control or invisible formatting character visible as an escape (no ANSI sequence,
    no bidirectional override, no line break a sender put there)."""
    text = "" if value is None else str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text)
    return Text(text)


def _environ(**flags: Optional[str]) -> None:
    """Flags override the environment; set them there so an imported app reads them too."""
    names = {"database_url": "ICHIDO_DATABASE_URL", "secret": "STRIPE_WEBHOOK_SECRET",
             "redis_url": "ICHIDO_REDIS_URL"}
    for key, value in flags.items():
        if value is not None:
            os.environ[names[key]] = value


def load_app(spec: str | None, workers: int = 1) -> Any:
    from ichido.app import App

    if spec is None:
        return App(workers=workers)
    module_name, _, attribute = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        app = getattr(importlib.import_module(module_name), attribute or "app")
    except Exception as exc:  # named, in one line: the import failing is the user's to see
        raise IchidoError(f"cannot load --app {spec}: {type(exc).__name__}: {exc}",
                          code="bad_app") from None
    if callable(app) and not isinstance(app, App):  # a factory, e.g. ichido.shop.app:create_app
        app = app()
    if not isinstance(app, App):
        raise IchidoError(f"{spec} is not an ichido.App", code="bad_app")
    app.workers = workers
    return app


def _install_recovery(service: Any) -> None:
    from ichido.recovery.service import install  # alerts, the reconcile sweep (issue 13)

    install(service)


@contextlib.contextmanager
def _inbox(database_url: str | None) -> Iterator[Any]:
    """The inbox of the configured store, closed (with its database) when the command ends."""
    from ichido.db import open_database
    from ichido.inbox import open_inbox

    _environ(database_url=database_url)
    settings = Settings.from_env()
    if os.environ.get("ICHIDO_QUEUE_URL") or os.environ.get("ICHIDO_AWS_LAYOUT"):
        from ichido.aws.admin import open_admin  # the store and the queue of an AWS layout

        admin = open_admin(settings)
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


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Worker threads in this process (0: none)."),
    app: Optional[str] = AppOpt,
    database_url: Optional[str] = DatabaseOpt,
    secret_file: Optional[str] = typer.Option(
        None, "--secret-file", help="File holding the signing secret(s), comma- or line-"
        "separated. Overrides STRIPE_WEBHOOK_SECRET_FILE and STRIPE_WEBHOOK_SECRET."),
    secret: Optional[str] = typer.Option(
        None, "--secret", help="Discouraged: every user of this machine sees it in ps. Use "
        "STRIPE_WEBHOOK_SECRET or --secret-file."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Run the receiver and workers in one process."""
    import uvicorn

    from ichido.serving import server_config

    if secret is not None:
        err.print("warning: --secret shows the signing secret to every user of this machine "
                  "(ps, /proc); use STRIPE_WEBHOOK_SECRET or --secret-file", highlight=False)
    if secret_file is not None:
        os.environ.pop("STRIPE_WEBHOOK_SECRET", None)
        os.environ["STRIPE_WEBHOOK_SECRET_FILE"] = secret_file
    _environ(database_url=database_url, secret=secret)
    service = load_app(app, workers)
    _install_recovery(service)
    service.settings.require_secret()
    _check_writable(service)  # open and check the store now: a schema behind is one clear line
    err.print(f"ichido: receiving on http://{host}:{port}/webhooks/stripe, "
              f"{workers} worker(s), store {redact_url(service.settings.database_url)}")
    if service.routes and any(getattr(r, "path", "") == "/dashboard" for r in service.routes):
        err.print(f"ichido: dashboard on http://{host}:{port}/dashboard/")
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise stop the event loop for tens of milliseconds.
    gc.freeze()
    try:
        uvicorn.Server(server_config(service, service.settings, host=host, port=port,
                                     log_level=log_level)).run()
    finally:
        service.close()


def _check_writable(service: Any) -> None:
    """A store the receiver cannot open or write would answer every delivery 503: say so at
    start, in one line."""
    try:
        service.start()
        service.inbox.ping()
        with service.inbox.transaction():
            pass
    except Exception as exc:  # the engine's or the file system's own error, named in one line
        read_only = any(word in str(exc).replace(" ", "").lower()
                        for word in ("readonly", "permissiondenied"))
        if isinstance(exc, IchidoError) and not read_only:
            raise
        raise StorageUnavailable(
            f"cannot write to {redact_url(service.settings.database_url)}: {exc}",
            code="read_only_store" if read_only else "storage_unavailable") from None


@cli.command("dashboard")
def dashboard_command(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8001, help="TCP port."),
    app: Optional[str] = AppOpt,
    database_url: Optional[str] = DatabaseOpt,
) -> None:
    """Serve only the operator page (needs ICHIDO_DASHBOARD_TOKEN), e.g. against a remote store."""
    import uvicorn

    from ichido.dashboard.standalone import standalone

    _environ(database_url=database_url)
    service = load_app(app, 0)
    page = standalone(service)
    service.start()
    service.inbox.ping()
    err.print(f"ichido: dashboard on http://{host}:{port}/dashboard/, "
              f"store {redact_url(service.settings.database_url)}")
    try:
        uvicorn.run(page, host=host, port=port, log_level="warning", lifespan="on")
    finally:
        service.close()


@cli.command()
def worker(
    app: Optional[str] = AppOpt,
    database_url: Optional[str] = DatabaseOpt,
    concurrency: int = typer.Option(1, help="Worker threads."),
    drain: bool = typer.Option(False, "--drain", help="Process what is due, then exit."),
) -> None:
    """Process stored events (run as many of these as you like)."""
    _environ(database_url=database_url)
    service = load_app(app, 0)
    _install_recovery(service)
    service.start()
    try:
        if drain:
            out.print(f"processed {service.worker().drain()} event(s)")
            return
        stop = threading.Event()
        service.start_workers(concurrency)
        store = redact_url(service.settings.database_url)
        err.print(f"ichido: {concurrency} worker thread(s) on {store}")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    finally:
        service.close()


@cli.command()
def migrate(app: Optional[str] = AppOpt, database_url: Optional[str] = DatabaseOpt) -> None:
    """Bring the database schema up to this version of ichido (and of your app's tables)."""
    _environ(database_url=database_url)
    load_app(app, 0).migrate()
    out.print("schema is up to date")


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
        count = inbox.requeue_dead(None if all_ else [event_id])
    out.print(f"requeued {count} dead event(s)")
    if event_id and not count:
        raise typer.Exit(1)


@cli.command()
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


@cli.command()
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
    table = Table("id", "type", "status", "attempts", "received", "last error")
    for record in records:
        row = _record_json(record)
        table.add_row(shown(row["id"]), shown(row["type"]), shown(row["status"]),
                      shown(row["attempts"]), shown(row["received_at"]),
                      shown((row["last_error"] or [""])[0][:60]))
    out.print(table)


def _when(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="seconds")
