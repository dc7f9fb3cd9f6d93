"""The HTTP server: uvicorn, with what an unauthenticated sender may cost bounded.

Anyone on the internet can open a connection to the webhook endpoint before any signature is
read, so the server itself bounds, from ``Settings``: the request line and headers
(``max_header_bytes``: an 8 MB ``Stripe-Signature`` is refused at 16 KiB, never read whole),
the time to send them (``header_timeout_seconds``: half-sent headers, slowloris) and the body
(``body_timeout_seconds``), idle keep-alive (``keepalive_seconds``) and open connections
(``max_connections``, and a share of them per address: past either, the oldest connection still
waiting for its headers makes room, else the new one is answered 503 and closed, before file
descriptors run out; ichido.connections).

uvicorn's httptools protocol has no header limit or header timeout of its own, hence the small
subclass; the cost on the hot path is a comparison per read, and timers only for requests that
arrive in pieces.

The same subclass takes ``POST /webhooks/stripe`` on a fast path when it serves an ichido
``App``: instead of an ASGI scope, a task and two ``send`` calls per request, the parser's
callbacks run the receiver's own steps (``WebhookReceiver.check_head`` once the headers are in,
``check_body`` once the body is, both before anything is stored), hand the delivery to the
group commit, and the group commit's answer is written in one piece. Every limit above applies
unchanged (the reading states and deadlines are the connection's, not the path's), so do the
body limit, the reason codes, keep-alive, pipelining and graceful shutdown (the request is
the connection's ``cycle`` as uvicorn's own would be). Anything else, or anything unusual
(another path, ``Expect: 100-continue``, an upgrade, a request pipelined behind another, a
sender not reading its answers, an allowlist behind a proxy, a root path, a receiver not
started yet), goes through ASGI as before; so does the app when mounted elsewhere.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, TypeVar

import orjson
import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ichido.config import Settings
from ichido.connections import ConnectionTable
from ichido.errors import REASONS, IchidoError, PayloadTooLarge, ReasonCode, error_json
from ichido.event import Delivery
from ichido.group_commit import GroupCommit, Outcome
from ichido.metrics import METRICS
from ichido.receiver import WebhookReceiver, answer
from ichido.sources import AddressSet, parse_networks

# The public API (docs/api.md): what an application may import from here.
__all__ = ["ThreadedServer"]

T = TypeVar("T")
_IDLE, _HEAD, _BODY = "idle", "head", "body"  # what the connection is reading
_REFUSED = "refused"  # answered and half-closed: what still arrives is read and dropped
LINGER_SECONDS = 1.0  # then closed: closing at once with bytes unread resets the connection,
# and a reset can destroy the answer before the client reads it


def _refusal(status: str, code: ReasonCode) -> bytes:
    body = orjson.dumps(error_json(code, REASONS[code]))
    return b"".join([b"HTTP/1.1 ", status.encode(), b"\r\ncontent-type: application/json\r\n"
                     b"connection: close\r\ncontent-length: ", b"%d" % len(body), b"\r\n\r\n",
                     body])


_TOO_LARGE = _refusal("431 Request Header Fields Too Large", "headers_too_large")
_TIMEOUT = _refusal("408 Request Timeout", "request_timeout")
_BUSY: dict[ReasonCode, bytes] = {
    code: _refusal("503 Service Unavailable", code)
    for code in ("too_many_connections", "too_many_connections_from_address")}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (class attributes: ``protocol_for``
    makes one subclass per ``Settings``)."""

    max_header_bytes = 16 * 1024
    header_timeout = 10.0
    body_timeout = 20.0
    table = ConnectionTable(500, 100, AddressSet(()))  # one per server: see protocol_for

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading = _IDLE
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_for = _IDLE
        self._host: str | None = None
        # the request target is the path only without a root path (never with ichido serve)
        self._receiver = None if self.root_path else _fast_receiver(self.app)
        self._webhook: _Webhook | None = None  # the request on the fast path, if any

    # typed Transport, as uvicorn's own (a server protocol is given one)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # above
        super().connection_made(transport)
        self._host = self.client[0] if self.client else None
        refused = self.table.admit(self, self._host)
        if refused is not None:
            METRICS.rejected.labels(refused).inc()
            transport.write(_BUSY[refused])
            transport.close()
            return
        self._arm(_HEAD)  # a connection that sends nothing is cut like half-sent headers

    def connection_lost(self, exc: Exception | None) -> None:
        self.table.release(self, self._host)
        self._disarm()
        webhook = self._webhook
        if webhook is not None and webhook.body is not None and not webhook.response_complete:
            METRICS.rejected.labels("client_disconnected").inc()  # gone before its body was in
        super().connection_lost(exc)

    # what the connection table asks (ichido.connections)
    def waiting_for_request(self) -> bool:
        """Nothing of a request yet, part of its headers, or idle after an answer: closing it
        loses nothing the sender finished sending."""
        if self._reading is _HEAD:
            return True
        if self._reading is not _IDLE:
            return False
        cycle = self.cycle
        return cycle is None or cycle.response_complete

    def evict(self) -> None:
        """Closed to make room: 503 with the reason, as a connection refused at once gets,
        except one idling after an answer (a client would take a 503 there for the answer to
        its next request): that one is closed as keep-alive closes it."""
        METRICS.rejected.labels("too_many_connections").inc()
        idle_after_answer = self._reading is _IDLE and self.cycle is not None
        self._refuse(b"" if idle_after_answer else _BUSY["too_many_connections"])

    def data_received(self, data: bytes) -> None:
        if self._reading is not _BODY:  # headers (or the first bytes of the next request)
            if self._reading is _REFUSED:
                return
            allowance = self.max_header_bytes - self._head_bytes
            if len(data) > allowance:
                self._receive_past_allowance(data, allowance)
                return
            self._head_bytes += len(data)
        super().data_received(data)
        reading = self._reading
        if reading is _IDLE:
            if self._deadline is not None:
                self._disarm()
        elif self._deadline_for is not reading and not self.transport.is_closing():
            self._arm(reading)  # a request that arrives in pieces: bound each piece's wait

    def _receive_past_allowance(self, data: bytes, allowance: int) -> None:
        """Feed no more header bytes than allowed; if the headers are still not complete by
        then, refuse with 431 and close, before the parser buffers any more of them."""
        self._head_bytes += allowance
        super().data_received(data[:allowance])
        if self.transport.is_closing():
            return
        if self._reading is _BODY or (self._reading is _IDLE and self._head_bytes == 0):
            self.data_received(data[allowance:])  # headers complete: the rest is body, or more
            return
        METRICS.rejected.labels("headers_too_large").inc()
        self._refuse(_TOO_LARGE)

    # parser callbacks: where each request is
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading = _HEAD
        self._webhook = None

    def on_headers_complete(self) -> None:
        receiver = self._receiver
        cycle = self.cycle
        if (receiver is None or self.url != WEBHOOK_PATH or self.expect_100_continue
                or self.parser.get_method() != b"POST" or self.parser.should_upgrade()
                or (cycle is not None and not cycle.response_complete)
                or self.flow.write_paused  # a sender not reading its answers: ASGI waits
                or self.limit_concurrency is not None
                or (group := receiver.ready()) is None):
            super().on_headers_complete()
        else:
            self._take_webhook(receiver, group)
        self._reading = _BODY

    def on_body(self, body: bytes) -> None:
        webhook = self._webhook
        if webhook is None:
            super().on_body(body)
        elif webhook.body is not None and not webhook.response_complete:
            webhook.size += len(body)
            limit = webhook.receiver.settings.max_body_bytes
            if webhook.size > limit:
                self._refuse_webhook(webhook, PayloadTooLarge(
                    f"body exceeds the {limit}-byte limit"))
            else:
                webhook.body.append(body)

    def on_message_complete(self) -> None:
        webhook = self._webhook
        if webhook is None:
            super().on_message_complete()
        elif webhook.body is not None and not webhook.response_complete:
            self._store_webhook(webhook)
        self._reading = _IDLE
        self._head_bytes = 0

    # the fast path (see the module's docstring)
    def _take_webhook(self, receiver: WebhookReceiver, group: GroupCommit) -> None:
        http_version = self.parser.get_http_version()
        webhook = _Webhook(self, receiver, group, http_version,
                           http_version != "1.0" and self.parser.should_keep_alive())
        self.cycle = webhook  # type: ignore[assignment]  # what uvicorn's code reads of a cycle
        self._webhook = webhook
        try:
            webhook.signature = receiver.check_head(
                self.client[0] if self.client else None, dict(self.headers))
        except IchidoError as exc:
            self._refuse_webhook(webhook, exc)
        except Exception as exc:  # as uvicorn answers an app's exception
            self._fail_webhook(webhook, exc)

    def _store_webhook(self, webhook: _Webhook) -> None:
        body, webhook.body = b"".join(webhook.body or ()), None
        try:
            webhook.delivery = webhook.receiver.check_body(body, webhook.signature)
            webhook.group.enqueue(webhook.delivery, webhook)  # answered by the group commit
        except IchidoError as exc:
            self._refuse_webhook(webhook, exc)
        except Exception as exc:
            self._fail_webhook(webhook, exc)

    def _refuse_webhook(self, webhook: _Webhook, exc: IchidoError) -> None:
        webhook.body = None
        self._answer_webhook(webhook, *webhook.receiver.refused(exc))

    def _fail_webhook(self, webhook: _Webhook, exc: BaseException) -> None:
        """What uvicorn does when an ASGI app raises before answering: log, 500, close."""
        webhook.body = None
        self.logger.error("Exception in ASGI application\n", exc_info=exc)
        webhook.keep_alive = False
        self._write_webhook(webhook, 500, b"text/plain; charset=utf-8", b"Internal Server Error")

    def _answer_webhook(self, webhook: _Webhook, status: int, answer: dict[str, Any]) -> None:
        self._write_webhook(webhook, status, b"application/json", orjson.dumps(answer))

    def _write_webhook(self, webhook: _Webhook, status: int, content_type: bytes,
                       body: bytes) -> None:
        """The answer as uvicorn writes an ASGI app's (its default headers, then the app's),
        in one write."""
        if webhook.disconnected or webhook.response_complete:
            return
        webhook.response_started = True
        if self.access_log:
            self.access_logger.info('%s - "%s %s HTTP/%s" %d',
                                    "%s:%d" % self.client if self.client else "", "POST",
                                    WEBHOOK_PATH.decode(), webhook.http_version, status)
        self.transport.write(b"".join((
            STATUS_LINE[status], _default_headers(self.server_state.default_headers),
            b"content-type: ", content_type, b"\r\ncontent-length: %d\r\n" % len(body),
            b"\r\n" if webhook.keep_alive else b"connection: close\r\n\r\n", body)))
        webhook.response_complete = True
        if not webhook.keep_alive:
            self.transport.close()
        self.on_response_complete()

    # deadlines
    def _arm(self, reading: str) -> None:
        self._disarm()
        timeout = self.body_timeout if reading is _BODY else self.header_timeout
        self._deadline = self.loop.call_later(timeout, self._on_deadline)
        self._deadline_for = reading

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._deadline_for = _IDLE

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        METRICS.rejected.labels("request_timeout").inc()
        started = self._head_bytes > 0 or self._reading is not _IDLE
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            started = False  # mid-response: nothing more may be written
        self._refuse(_TIMEOUT if started else b"")

    def _refuse(self, answer: bytes) -> None:
        self.table.release(self, self._host)  # closing: its slot is free for the next one
        self._disarm()
        if not answer or not self.transport.can_write_eof():
            if answer:
                self.transport.write(answer)
            self.transport.close()
            return
        self.transport.write(answer)
        self.transport.write_eof()
        self._reading = _REFUSED
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)


WEBHOOK_PATH = b"/webhooks/stripe"  # the request target the fast path takes, byte for byte


class _NoEvent:
    def set(self) -> None:
        pass


class _Webhook:
    """A request on the fast path: what uvicorn's and the limits' code read of a request
    cycle, and the group commit's waiter for its delivery (``ichido.group_commit.Waiter``)."""

    __slots__ = ("protocol", "receiver", "group", "http_version", "keep_alive", "signature",
                 "body", "size", "delivery", "response_started", "response_complete",
                 "disconnected", "finished")
    message_event = _NoEvent()  # uvicorn sets it when the connection is lost

    def __init__(self, protocol: BoundedHttpToolsProtocol, receiver: WebhookReceiver,
                 group: GroupCommit, http_version: str, keep_alive: bool) -> None:
        self.protocol = protocol
        self.receiver = receiver
        self.group = group
        self.http_version = http_version
        self.keep_alive = keep_alive  # uvicorn clears it to close after the answer (shutdown)
        self.signature = b""
        self.body: list[bytes] | None = []  # None once the body is in, or no longer wanted
        self.size = 0
        self.delivery: Delivery | None = None
        self.response_started = self.response_complete = self.disconnected = False
        self.finished = False

    # the group commit's waiter
    def done(self) -> bool:
        return self.finished

    def set_result(self, outcome: Outcome) -> None:
        self.finished = True
        delivery = self.delivery
        assert delivery is not None  # enqueued with it
        self._answer(lambda: self.protocol._answer_webhook(self, 200, answer(delivery, outcome)))

    def set_exception(self, exc: BaseException) -> None:
        self.finished = True
        self._answer(lambda: self.protocol._refuse_webhook(self, exc)
                     if isinstance(exc, IchidoError) else self.protocol._fail_webhook(self, exc))

    def _answer(self, write: Callable[[], None]) -> None:
        """Called by the group commit for each delivery of a batch: nothing here may fail the
        others' answers."""
        try:
            write()
        except Exception as exc:
            self.protocol.logger.error("Exception in ASGI application\n", exc_info=exc)
            self.protocol.transport.close()


_defaults: tuple[object, bytes] = (None, b"")


def _default_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (``date``, ``server``) as it writes them; the server replaces
    the list once a second, so they are joined again only then."""
    global _defaults
    if _defaults[0] is not headers:
        _defaults = (headers, b"".join(name.lower() + b": " + value + b"\r\n"
                                       for name, value in headers))
    return _defaults[1]


def _fast_receiver(app: Any) -> WebhookReceiver | None:
    """The receiver the fast path may run for ``app`` (uvicorn's loaded app): the one an
    ichido ``App`` hands the webhook route to (``App.fast_path_receiver``), also behind
    uvicorn's proxy headers when the receiver reads no sender address (the proxy's rewrite of
    the address is then not needed)."""
    behind_proxy = isinstance(app, ProxyHeadersMiddleware)
    if behind_proxy:
        app = app.app
    receiver = getattr(app, "fast_path_receiver", None)
    if not isinstance(receiver, WebhookReceiver):
        return None
    if behind_proxy and receiver.sources is not None:
        return None
    return receiver


def protocol_for(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    return type("IchidoHttpProtocol", (BoundedHttpToolsProtocol,), {
        "max_header_bytes": settings.max_header_bytes,
        "header_timeout": settings.header_timeout_seconds,
        "body_timeout": settings.body_timeout_seconds,
        "table": ConnectionTable(settings.max_connections, settings.max_connections_per_address,
                                 AddressSet(parse_networks(settings.trusted_proxies,
                                                           "ICHIDO_TRUSTED_PROXIES"))),
    })


def server_config(app: Any, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000,
                  log_level: str = "warning", **options: Any) -> uvicorn.Config:
    """uvicorn as ``ichido serve`` runs it: httptools behind the limits, uvloop, a bounded
    graceful shutdown (SIGTERM never waits on a stuck request for ever), and
    ``X-Forwarded-For`` read from the trusted proxies only (none by default: uvicorn's own
    default trusts 127.0.0.1, which any local process can be)."""
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="on",
        http=protocol_for(settings), loop="uvloop",
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        # uvicorn's hints say int; its timers take any number of seconds (ICHIDO_KEEPALIVE=0.5s)
        timeout_keep_alive=settings.keepalive_seconds,  # type: ignore[arg-type]  # see above
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,  # type: ignore[arg-type]  # ditto
        h11_max_incomplete_event_size=settings.max_header_bytes, **options)


class ThreadedServer:
    """``with ThreadedServer(app) as server: httpx.get(server.url)``; ``port=0`` picks one."""

    def __init__(self, app: Any, *, port: int = 0, host: str = "127.0.0.1",
                 log_level: str = "warning", settings: Settings | None = None) -> None:
        limits = settings or getattr(app, "settings", None)
        config = server_config(app, limits if isinstance(limits, Settings) else Settings(),
                               host=host, port=port, log_level=log_level, access_log=False)
        # server_config sets http to ichido's protocol class, which carries the table
        self.connections: ConnectionTable = config.http.table  # type: ignore[union-attr]  # see above
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.url = ""

    def start(self, timeout: float = 15.0) -> "ThreadedServer":
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve()

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()),
                                        name="ichido-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (is the port free?)")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def on_loop(self, function: Callable[[], T], timeout: float = 15.0) -> T:
        """``function()`` run in the server's event loop, where its connections live (tests
        look at ``connections`` there)."""
        async def call() -> T:
            return function()

        assert self._loop is not None, "the server is not running"
        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
