"""``ichido aws …``: found lazily by the core CLI, so boto3 and moto load only here."""

from __future__ import annotations

import os
import shlex
import sys
import threading
from typing import Optional

import typer

aws_cli = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="ichido's AWS layout (Lambda + SQS or DynamoDB Streams).")


@aws_cli.callback()
def group() -> None:
    """ichido's AWS layout: Lambda receiver and worker, SQS or DynamoDB Streams."""


@aws_cli.command()
def local(
    port: int = typer.Option(8000, help="Port of the local Function URL."),
    app: Optional[str] = typer.Option(None, "--app", help="module:attribute of your ichido.App."),
    layout: str = typer.Option("sqs", help="sqs or streams."),
    fifo: bool = typer.Option(False, "--fifo", help="A FIFO queue, grouped by Stripe object."),
    max_receive_count: int = typer.Option(3, min=1, help="Receives before the DLQ."),
    moto_port: int = typer.Option(0, help="Port of the moto server (0: any free one)."),
    aws_endpoint: Optional[str] = typer.Option(
        None, help="Use this AWS endpoint (a moto server already running) instead of starting "
        "moto; its queues and table are created if missing, so several of these processes "
        "can share one (as Lambda environments share the queue)."),
    retry_after: int = typer.Option(2, min=0, help="Seconds a failed message stays invisible."),
) -> None:
    """Run the whole AWS layout here: moto, the queue and tables, the receiver behind a local
    Function URL, and the event-source runner invoking the worker."""
    from ichido.extras import require

    require("aws", needed_by="ichido aws local runs the Lambda functions")
    require("aws-local", needed_by="ichido aws local starts a moto server")
    from ichido.aws import local as stack
    from ichido.aws import stores
    from ichido.cli import load_app
    from ichido.dashboard.mount import Dashboard
    from ichido.errors import ConfigError
    from ichido.serving import ThreadedServer

    if layout not in ("sqs", "streams"):
        raise ConfigError("--layout must be sqs or streams")
    if fifo and layout != "sqs":
        raise ConfigError("--fifo is an SQS option")
    service = load_app(app, 0)
    service.install(Dashboard())  # its routes are served beside the webhook's, when it is on
    service.settings.require_secret()
    moto = None if aws_endpoint else stack.start_moto(moto_port)
    if moto is not None:
        host, bound = moto.get_host_and_port()
    endpoint = aws_endpoint or f"http://{host}:{bound}"
    database_url = os.environ.get("ICHIDO_DATABASE_URL") or "dynamodb://ichido-local"
    if database_url.startswith("sqlite"):
        raise ConfigError("ichido aws local needs dynamodb:// or postgresql:// (the store of an "
                          "AWS layout)")
    made = stack.provision(endpoint, layout=layout, fifo=fifo,
                           max_receive_count=max_receive_count, database_url=database_url,
                           retry_after=retry_after, app=service)
    from ichido.aws.settings import AwsSettings

    aws = AwsSettings.from_env()
    settings = stores.settings_from_env(aws)

    def environment():
        from ichido.aws.receiver import lambda_handler

        store, namespace = stores.receiver_store(settings, aws)
        return lambda_handler(settings, store, stores.seen_tier(settings, namespace))

    gateway = stack.FunctionUrlGateway(environment)
    stop = threading.Event()
    # The event-source runner, and the app's own loops (its outbox dispatcher: on AWS a
    # scheduled function would run it).
    for name, loop in [("event-source-runner", made.poller.run),
                       *((f"app-loop-{i}", l) for i, l in enumerate(service.loops))]:
        threading.Thread(target=loop, args=(stop,), daemon=True, name=name).start()
    server = ThreadedServer(stack.LocalRouter(gateway, service), port=port).start()
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(made.env.items()))
    print(f"webhook URL: {server.url}/", flush=True)
    print(f"environment: {exports}", flush=True)
    print(f"ichido aws local: layout {layout}{' (FIFO)' if fifo else ''}, store "
          f"{database_url.split('@')[-1]}, DLQ after {max_receive_count} receives",
          file=sys.stderr, flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.stop()
        if moto is not None:
            moto.stop()
