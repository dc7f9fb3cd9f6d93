"""``ichido aws local``: the whole AWS layout on one machine.

moto plays SQS, DynamoDB, DynamoDB Streams and S3 (large bodies); a local HTTP endpoint turns each request into a
Function URL event for the receiver's real handler (each thread of it one Lambda execution
environment); the event-source runner polls the queue or the stream and invokes the worker's
real handler. boto3 finds moto through ``AWS_ENDPOINT_URL``, so the printed environment lets
``ichido stats``, ``events`` and ``dlq`` work against it from another terminal.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ichido.app import App
    from ichido.aws.runner import SqsPoller, StreamPoller

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
TEXT_TYPES = ("application/json", "text/")


class FunctionUrlGateway:
    """ASGI: an HTTP request in, a Function URL invocation (payload 2.0), its answer out.

    Like AWS, text bodies travel as text and others base64-encoded; ``environments`` threads
    stand for that many concurrent execution environments, each built by ``make_handler``."""

    def __init__(self, make_handler: Callable[[], LambdaHandler], environments: int = 4) -> None:
        self._make = make_handler
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(environments, thread_name_prefix="lambda-env")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event = function_url_event(scope, body)
        answer = await asyncio.get_running_loop().run_in_executor(self._pool, self._invoke, event)
        payload = answer.get("body") or ""
        data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
        headers = [(k.encode(), str(v).encode()) for k, v in (answer.get("headers") or {}).items()]
        await send({"type": "http.response.start", "status": answer["statusCode"],
                    "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self._local, "handler", None)
        if handler is None:
            handler = self._local.handler = self._make()
        return handler(event, None)


def function_url_event(scope: dict, body: bytes) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        headers[key] = f"{headers[key]},{value.decode('latin-1')}" if key in headers else \
            value.decode("latin-1")
    text = headers.get("content-type", "").startswith(TEXT_TYPES)
    try:
        encoded, is_b64 = (body.decode("utf-8"), False) if text else (None, True)
    except UnicodeDecodeError:
        encoded, is_b64 = None, True
    if is_b64:
        encoded = base64.b64encode(body).decode()
    path = scope.get("path", "/")
    return {"version": "2.0", "routeKey": "$default", "rawPath": path,
            "rawQueryString": scope.get("query_string", b"").decode("latin-1"),
            "headers": headers,
            "requestContext": {"http": {"method": scope["method"], "path": path,
                                        "protocol": "HTTP/1.1",
                                        "sourceIp": (scope.get("client") or ("127.0.0.1",))[0],
                                        "userAgent": headers.get("user-agent", "")},
                               "requestId": uuid.uuid4().hex, "routeKey": "$default",
                               "stage": "$default", "accountId": "anonymous"},
            "body": encoded, "isBase64Encoded": is_b64}


class LocalRouter:
    """What ``ichido aws local`` serves: webhooks (``POST /`` or ``/webhooks/stripe``) through
    the Function URL gateway, every other route (an app's own API, ``/healthz``) by the app."""

    WEBHOOK_PATHS = ("/", "/webhooks/stripe")

    def __init__(self, gateway: FunctionUrlGateway, app: "App") -> None:
        self.gateway = gateway
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and not (scope["method"] == "POST"
                                            and scope["path"] in self.WEBHOOK_PATHS):
            await self.app(scope, receive, send)
            return
        await self.gateway(scope, receive, send)


@dataclass
class LocalStack:
    """What ``ichido aws local`` set up, as environment for the functions and the CLI."""

    env: dict[str, str]
    poller: "SqsPoller | StreamPoller"


def start_moto(port: int = 0) -> Any:
    """moto's server in this process, taking DynamoDB's requests one at a time: moto checks a
    conditional write and applies it without a lock, so two writers at once could both pass
    ``attribute_not_exists``, which AWS never lets happen. Serialized, each condition is atomic
    as on AWS. Its SQS gets ``moto_speedups`` (same answers, sooner, however long the queue) and
    ``moto_fixes`` (a FIFO group comes back in order, as on AWS)."""
    import logging

    from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                               create_backend_app)
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    from ichido.aws import moto_fixes, moto_speedups

    moto_speedups.apply()
    moto_fixes.apply()

    class AtomicDynamoDBMotoServer(ThreadedMotoServer):
        """moto's ThreadedMotoServer (its ``_server_entry``), with the app wrapped."""

        def _server_entry(self) -> None:
            app = one_dynamodb_request_at_a_time(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = AtomicDynamoDBMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


def one_dynamodb_request_at_a_time(app: Callable) -> Callable:
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Callable) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return serve


def provision(endpoint: str, *, layout: str, fifo: bool, max_receive_count: int,
              database_url: str, retry_after: int, app: "App") -> LocalStack:
    """Create the queue (with its DLQ) or the table's stream, and the store; set the
    environment the functions read; return it with the poller that runs the worker."""
    os.environ.update({"AWS_ENDPOINT_URL": endpoint,
                       "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                       "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
                       "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")})
    import boto3

    from ichido.aws import stores
    from ichido.aws.runner import SqsPoller, StreamPoller
    from ichido.aws.settings import AwsSettings
    from ichido.aws.worker import EventApplier, SqsWorker, StreamsWorker
    from ichido.config import Settings

    env = {"ICHIDO_AWS_LAYOUT": layout, "ICHIDO_DATABASE_URL": database_url,
           "ICHIDO_MAX_RECEIVE_COUNT": str(max_receive_count)}
    settings = Settings.from_env().with_(database_url=database_url)
    if stores.is_dynamodb(settings):
        from ichido.db.dynamodb import DynamoDatabase

        DynamoDatabase.from_url(database_url).create_table(stream=layout == "streams")
    else:
        app.migrate()  # ichido's and the app's tables, as `ichido migrate --app` would
    if layout == "sqs":
        env.update(zip(("ICHIDO_QUEUE_URL", "ICHIDO_DLQ_URL"),
                       create_queues(boto3.client("sqs"), fifo, max_receive_count)))
    env["ICHIDO_BODY_BUCKET"] = create_bucket(boto3.client("s3"))
    os.environ.update(env)
    aws = AwsSettings.from_env()
    poller: SqsPoller | StreamPoller
    reader = stores.reader(settings, aws, app)  # thin events' reads (STRIPE_API_KEY)
    if layout == "sqs":
        ledger = stores.ledger(settings)
        applier = EventApplier(app.handlers, ledger, stores.bodies(aws),
                               stores.fetch(ledger, reader))
        queue = stores.sqs_queue(aws)
        worker = SqsWorker(applier, max_receive_count=max_receive_count, fifo=fifo,
                           dead_letter=queue.dead_letter)
        poller = SqsPoller(env["ICHIDO_QUEUE_URL"], worker.handle, failed_visibility=retry_after)
    else:
        from ichido.queue.streams import StreamsQueue, wanted

        ledger = stores.streams_ledger(settings)  # Streams are DynamoDB's
        applier = EventApplier(app.handlers, ledger, stores.bodies(aws),
                               stores.fetch(ledger, reader))
        streams = StreamsWorker(applier, ledger, max_attempts=max_receive_count, wanted=wanted)
        arn = StreamsQueue(ledger.table_name).stream_arn()
        poller = StreamPoller(arn, streams.handle, accepts=wanted)
    return LocalStack({**env, **{k: os.environ[k] for k in (
        "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}},
        poller)


def create_bucket(s3: Any) -> str:
    """The bucket for bodies larger than the layout holds in line (``ichido.aws.bodies``)."""
    name = "ichido-bodies-local"
    s3.create_bucket(Bucket=name)
    return name


def create_queues(sqs: Any, fifo: bool, max_receive_count: int) -> tuple[str, str]:
    suffix = ".fifo" if fifo else ""
    attributes = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"ichido-dead{suffix}", Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    queue = sqs.create_queue(QueueName=f"ichido-events{suffix}", Attributes={
        **attributes, "VisibilityTimeout": "30", "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)})})["QueueUrl"]
    return queue, dlq
