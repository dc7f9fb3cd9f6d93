"""The ``ichido`` command: parse flags, call the library, print. No logic of its own lives here.

This module holds the group and the commands that run ichido (serve, dashboard, worker,
migrate); the commands over stored events are in ``ichido.admin_cli``, and the example shop's,
the emulator's, recovery's and AWS's are loaded by name from their own packages."""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Optional

import typer
import typer.main
from rich.markup import escape
from rich.text import Text
from typer.core import TyperGroup

from ichido import admin_cli
from ichido import backup as backup_commands
from ichido.config import redact_url
from ichido.console import err, out, shown
from ichido.errors import IchidoError, StorageUnavailable

if TYPE_CHECKING:  # typer carries its own copy of click, which its TyperGroup is typed with
    from typer import _click as click

    from ichido.app import App
    from ichido.extras import MissingExtra

# The example shop's and the local Stripe's commands, by name: imported only when one is run
# (or help lists them), so the core imports neither (tests/test_imports.py checks it).
APPLICATION_COMMANDS = {
    "orders": "ichido.shop.cli:orders_cli",
    "fees": "ichido.shop.cli:fees_cli",
    "demo": "ichido.shop.cli:demo",
    "emulator": "ichido.emulator.cli:emulator",
    "reconcile": "ichido.recovery.cli:reconcile",  # recovery (issue 13): core, loaded lazily
    "replay": "ichido.recovery.cli:replay",
    "aws": "ichido.aws.cli:aws_cli",  # needs the ichido[aws-local] extra (boto3, mangum, moto)
}
# What each application command runs, and the sibling distributions that bring it (the
# example shop, the local Stripe: ichido.extras.SIBLINGS): without one, the command is still
# listed, and running it is one line saying how to install it.
COMMAND_EXTRAS = {
    "orders": (("shop", "the example shop"),),
    "fees": (("shop", "the example shop's fee guard"),),
    "demo": (("shop", "the example shop"), ("emulator", "the local Stripe")),
    "emulator": (("emulator", "the local Stripe"),),
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
    from ichido.extras import MissingExtra, require

    try:
        for extra, what in COMMAND_EXTRAS.get(name, ()):
            require(extra, needed_by=f"ichido {name} runs {what}")
    except MissingExtra as missing:
        return _not_installed(name, missing)
    module_name, _, attribute = spec.partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(target, typer.Typer):
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        target = single
    command = typer.main.get_command(target)
    command.name = name
    return command


def _not_installed(name: str, missing: MissingExtra) -> click.Command:
    """The command of an extra that is not installed: help lists it, and running it, with any
    arguments, raises ``missing`` (``main`` prints it in one line)."""
    single = typer.Typer(add_completion=False)
    install = escape(missing.install.partition(" (")[0])  # help renders rich markup: [redis]

    @single.command(name, help=f"Not installed: {install}", context_settings={
        "allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
    def run(args: Optional[list[str]] = typer.Argument(None, hidden=True)) -> None:
        raise missing

    command = typer.main.get_command(single)
    command.name = name
    return command


cli = typer.Typer(cls=LazyGroup, no_args_is_help=True, add_completion=False,
                  help="Receive Stripe webhooks and apply every event's effects exactly once.")
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


def _environ(**flags: Optional[str]) -> None:
    """Flags override the environment; set them there so an imported app reads them too."""
    names = {"database_url": "ICHIDO_DATABASE_URL", "secret": "STRIPE_WEBHOOK_SECRET",
             "redis_url": "ICHIDO_REDIS_URL"}
    for key, value in flags.items():
        if value is not None:
            os.environ[names[key]] = value


def load_app(spec: str | None, workers: int = 1) -> "App":
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


def _install_recovery(service: "App") -> None:
    from ichido.recovery.service import Recovery  # alerts, the reconcile sweep (issue 13)

    service.install(Recovery())


def _install_dashboard(service: Any) -> None:
    from ichido.dashboard.mount import Dashboard  # at /dashboard when ICHIDO_DASHBOARD_TOKEN is set

    service.install(Dashboard())


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
    _install_dashboard(service)
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


def _check_writable(service: "App") -> None:
    """A store the receiver cannot open or write would answer every delivery 503: say so at
    start, in one line. The probe writes what the receiver writes, never waiting for a lock a
    handler may hold (on SQLite: the intake, not the store)."""
    try:
        service.start()
        service.inbox.ping()
        service.inbox.probe()
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


# The operator's commands over stored events live in their own module; they are registered
# after the commands above so that help lists them in the same order as ever.
cli.command()(admin_cli.stats)
cli.command("backup")(backup_commands.backup_command)
cli.command("restore")(backup_commands.restore_command)
cli.command()(admin_cli.prune)
cli.add_typer(admin_cli.events_cli, name="events")
cli.add_typer(admin_cli.dlq_cli, name="dlq")
