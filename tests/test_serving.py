"""Before any signature is read, what a sender can cost is bounded: header size, the time to
send headers and body, idle keep-alive and the number of open connections. Real sockets on
loopback, the server as ``ichido serve`` configures it (ichido.serving.server_config)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from ichido.config import Settings
from ichido.metrics import METRICS
from ichido.serving import ThreadedServer

from tests.support import (
    SECRET,
    event_id_of,
    in_process_app,
    make_event,
    signed_headers,
    wait_until,
)

# Deadlines for a hung test only: each assertion waits for an event (a close), never a time.
HANG = 30.0


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    limits = getattr(request, "param", {})
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'serving.db'}",
                        webhook_secrets=(SECRET,), **limits)
    app = in_process_app(settings)
    with ThreadedServer(app) as running:
        running.app = app  # type: ignore[attr-defined]
        yield running


def connect(server: ThreadedServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=HANG)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and ``Content-Length`` body), leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"<closed>"
        assert not data.endswith(b"<closed>"), data
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def request_head(body: bytes, **extra: str) -> bytes:
    headers = {"Host": "ichido.test", "Content-Length": str(len(body)), **signed_headers(body),
               **extra}
    return (b"POST /webhooks/stripe HTTP/1.1\r\n"
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n")


def deliver(server: ThreadedServer) -> httpx.Response:
    body = make_event()
    return httpx.post(f"{server.url}/webhooks/stripe", content=body,
                      headers=signed_headers(body), timeout=HANG)


def test_an_8_mb_signature_header_is_refused_without_being_read(server: ThreadedServer) -> None:
    sock = connect(server)
    body = make_event()
    sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=")
    sent, cut_off = 0, False
    try:
        while sent < 8 * 1024 * 1024:  # the server answers and closes long before the end
            sock.sendall(b"a" * 65536)
            sent += 65536
        sock.sendall(b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except (BrokenPipeError, ConnectionResetError):
        cut_off = True
    answer = read_until_closed(sock)
    sock.close()
    # The 431 is written before the close; a reset (the server closing with our bytes unread)
    # may discard it on the way, but then we were cut off before the 8 MB were sent.
    assert answer.startswith(b"HTTP/1.1 431 ") or (cut_off and answer == b""), answer[:100]
    assert not answer or b'"headers_too_large"' in answer
    assert deliver(server).status_code == 200


@pytest.mark.parametrize("server", [{"max_header_bytes": 4096}], indirect=True)
def test_headers_under_the_limit_pass_and_just_over_it_are_refused(
        server: ThreadedServer) -> None:
    body = make_event()
    head = request_head(body)
    fits = head[:-2] + b"X-Pad: " + b"p" * (4096 - len(head) - 9) + b"\r\n\r\n"
    assert len(fits) == 4096
    for raw, status in ((fits, b"200"), (fits[:-2] + b"X: y\r\n\r\n", b"431")):
        sock = connect(server)
        sock.sendall(raw + body)
        answer = read_response(sock)
        sock.close()
        assert answer.split(b" ")[1] == status, answer[:200]


@pytest.mark.parametrize("server", [{"header_timeout_seconds": 0.3}], indirect=True)
def test_half_sent_headers_are_cut_off_after_the_header_timeout(server: ThreadedServer) -> None:
    body = make_event()
    sock = connect(server)
    sock.sendall(request_head(body)[:40])  # slowloris: then nothing more
    answer = read_until_closed(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"request_timeout"' in answer
    assert deliver(server).status_code == 200


@pytest.mark.parametrize("server", [{"header_timeout_seconds": 0.3}], indirect=True)
def test_a_connection_that_sends_nothing_is_closed(server: ThreadedServer) -> None:
    sock = connect(server)
    assert read_until_closed(sock) == b""
    sock.close()


@pytest.mark.parametrize("server", [{"header_timeout_seconds": 0.3}], indirect=True)
def test_a_second_request_trickled_on_a_kept_alive_connection_is_cut_off_too(
        server: ThreadedServer) -> None:
    body = make_event()
    sock = connect(server)
    sock.sendall(request_head(body) + body)
    first = read_response(sock)
    assert first.startswith(b"HTTP/1.1 200 "), first
    sock.sendall(request_head(make_event())[:30])
    assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    sock.close()


@pytest.mark.parametrize("server", [{"body_timeout_seconds": 0.3}], indirect=True)
def test_a_body_that_stops_half_way_is_cut_off_and_nothing_is_stored(
        server: ThreadedServer) -> None:
    body = make_event()
    sock = connect(server)
    sock.sendall(request_head(body) + body[: len(body) // 2])
    answer = read_until_closed(sock)
    sock.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
    assert server.app.inbox.get(event_id_of(body)) is None  # type: ignore[attr-defined]


def gone_mid_body() -> float:
    return METRICS.registry.get_sample_value("ichido_webhooks_rejected_total",
                                             {"code": "client_disconnected"}) or 0.0


def test_a_sender_gone_before_its_body_is_in_is_counted_and_nothing_is_stored(
        server: ThreadedServer) -> None:
    before = gone_mid_body()
    body = make_event()
    sock = connect(server)
    sock.sendall(request_head(body) + body[: len(body) // 2])
    sock.close()
    wait_until(lambda: gone_mid_body() == before + 1, timeout=HANG,
               message="the disconnect counted as client_disconnected")
    assert server.app.inbox.get(event_id_of(body)) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("server", [{"keepalive_seconds": 0.3}], indirect=True)
def test_an_idle_kept_alive_connection_is_closed(server: ThreadedServer) -> None:
    body = make_event()
    sock = connect(server)
    sock.sendall(request_head(body) + body)
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    assert read_until_closed(sock) == b""
    sock.close()


# -- one client cannot take every connection (ichido.connections) ------------------------------
# Each 127.0.0.N is a different client. The listening socket accepts in order, so every
# connection opened before another is admitted (or refused) before it.

def connect_from(server: ThreadedServer, source: str) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=HANG, source_address=(source, 0))


def deliver_from(server: ThreadedServer, source: str, **headers: str) -> bytes:
    """A whole signed delivery on a new connection from ``source``: the answer's status line
    and body (503s close the connection)."""
    body = make_event()
    sock = connect_from(server, source)
    try:
        sock.sendall(request_head(body, **headers) + body)
        answer = read_response(sock)
    finally:
        sock.close()
    return answer.split(b"\r\n", 1)[0] + b" " + answer.partition(b"\r\n\r\n")[2]


def trickle_from(server: ThreadedServer, source: str, count: int) -> list[socket.socket]:
    """``count`` slowloris connections: half a request head each, then nothing."""
    socks = []
    for _ in range(count):
        sock = connect_from(server, source)
        sock.sendall(request_head(make_event())[:40])
        socks.append(sock)
    return socks


def stall_from(server: ThreadedServer, source: str, count: int) -> list[socket.socket]:
    """``count`` connections with their headers in and half their body: busy, never evicted."""
    socks = []
    for _ in range(count):
        body = make_event()
        sock = connect_from(server, source)
        sock.sendall(request_head(body) + body[:10])
        socks.append(sock)
    wait_until(lambda: server.on_loop(server.connections.waiting) == 0, timeout=HANG,
               message="the stalled connections' headers to be read")
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


@pytest.mark.parametrize("server", [{"header_timeout_seconds": 300}], indirect=True)
def test_one_address_trickling_headers_cannot_take_every_connection(
        server: ThreadedServer) -> None:
    """600 half-sent requests from one address, the default limits (500 in all, 100 an
    address): deliveries from another address and from the attacker's own get through."""
    attacker = trickle_from(server, "127.0.0.2", 600)
    assert deliver_from(server, "127.0.0.3").startswith(b"HTTP/1.1 200 ")
    assert deliver_from(server, "127.0.0.2").startswith(b"HTTP/1.1 200 ")  # a NAT, a proxy
    assert server.on_loop(lambda: server.connections.held_by("127.0.0.2")) <= 100
    # the oldest slowloris was closed to make room, with a reason
    answer = read_until_closed(attacker[0])
    assert answer.startswith(b"HTTP/1.1 503 ") and b'"too_many_connections"' in answer
    close_all(attacker)


@pytest.mark.parametrize("server", [{"max_connections": 20, "max_connections_per_address": 50,
                                     "header_timeout_seconds": 300}], indirect=True)
def test_when_the_server_is_full_the_oldest_connection_waiting_for_headers_makes_room(
        server: ThreadedServer) -> None:
    attackers = trickle_from(server, "127.0.0.2", 15) + trickle_from(server, "127.0.0.4", 5)
    assert deliver_from(server, "127.0.0.3").startswith(b"HTTP/1.1 200 ")
    assert server.on_loop(lambda: server.connections.held_by("127.0.0.2")) == 14  # the busiest
    assert server.on_loop(lambda: server.connections.held_by("127.0.0.4")) == 5
    close_all(attackers)


@pytest.mark.parametrize("server", [{"max_connections": 3, "header_timeout_seconds": 300,
                                     "body_timeout_seconds": 300}], indirect=True)
def test_connections_past_the_limit_are_refused_when_none_waits_and_the_limit_frees_up(
        server: ThreadedServer) -> None:
    held = stall_from(server, "127.0.0.2", 2) + stall_from(server, "127.0.0.4", 1)
    extra = connect_from(server, "127.0.0.3")
    answer = read_until_closed(extra)
    extra.close()
    assert answer.startswith(b"HTTP/1.1 503 ") and b'"too_many_connections"' in answer
    held.pop().close()  # its slot is free once the server has seen the close
    wait_until(lambda: deliver(server).status_code == 200, timeout=HANG,
               message="a delivery once a held connection closed")
    close_all(held)


@pytest.mark.parametrize("server", [{"max_connections_per_address": 3,
                                     "body_timeout_seconds": 300}], indirect=True)
def test_an_address_holding_its_share_of_busy_connections_is_refused_alone(
        server: ThreadedServer) -> None:
    held = stall_from(server, "127.0.0.2", 3)
    assert deliver_from(server, "127.0.0.2").startswith(b"HTTP/1.1 503 ")
    extra = connect_from(server, "127.0.0.2")
    assert b'"too_many_connections_from_address"' in read_until_closed(extra)
    extra.close()
    assert deliver_from(server, "127.0.0.3").startswith(b"HTTP/1.1 200 ")
    close_all(held)


@pytest.mark.parametrize("server", [{"max_connections_per_address": 2,
                                     "body_timeout_seconds": 300,
                                     "trusted_proxies": ("127.0.0.5",)}], indirect=True)
def test_a_trusted_proxy_is_not_held_to_one_address_share(server: ThreadedServer) -> None:
    held = stall_from(server, "127.0.0.5", 4)
    assert deliver_from(server, "127.0.0.5").startswith(b"HTTP/1.1 200 ")
    assert deliver_from(server, "127.0.0.6").startswith(b"HTTP/1.1 200 ")
    close_all(held)


# The fast path (ichido.serving): POST /webhooks/stripe answered from the parser's callbacks
# must answer every request byte for byte as the same app does through ASGI.


def raw_request(body: bytes, headers: dict[str, str], *, chunked: bool = False,
                version: str = "1.1") -> bytes:
    """A whole request as a client sends it: ``Content-Length``, or the body in chunks."""
    head = {"Host": "ichido.test", **headers}
    if chunked:
        head["Transfer-Encoding"] = "chunked"
        sent = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 16384]), body[i:i + 16384])
                        for i in range(0, len(body), 16384)) + b"0\r\n\r\n"
    else:
        head["Content-Length"] = str(len(body))
        sent = body
    return (f"POST /webhooks/stripe HTTP/{version}\r\n".encode()
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in head.items()) + b"\r\n" + sent)


def exchange(server: ThreadedServer, *requests: bytes) -> bytes:
    """Send ``requests`` at once on one connection (pipelined when more than one), read an
    answer to each (answers may arrive in one piece); the ``date`` header, which ticks, is
    left out."""
    sock = connect(server)
    sock.sendall(b"".join(requests))
    data, answers = b"", []
    while len(answers) < len(requests):
        head, found, rest = data.partition(b"\r\n\r\n")
        if found:
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            if len(rest) >= length:
                answers.append(head + b"\r\n\r\n" + rest[:length])
                data = rest[length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, (answers, data)  # closed before every answer came
        data += chunk
    sock.close()
    return b"".join(line + b"\r\n" for answer in answers for line in answer.split(b"\r\n")
                    if not line.lower().startswith(b"date:"))


def webhook_cases() -> list[tuple[str, list[bytes]]]:
    from tests.test_receiver import REFUSALS

    cases = []
    for refusal in REFUSALS:
        body, headers = refusal.build()
        chunked = not isinstance(body, bytes)
        sent = body if isinstance(body, bytes) else b"".join(body)
        cases.append((refusal.name, [raw_request(sent, headers, chunked=chunked)]))
    event, other = make_event(), make_event()
    signed = signed_headers(event)
    cases += [
        ("accepted", [raw_request(event, signed)]),
        ("duplicate", [raw_request(event, signed)]),
        ("chunked", [raw_request(other, signed_headers(other), chunked=True)]),
        ("connection_close", [raw_request(make_event(), {**signed_headers(event), "Connection":
                                                          "close"})]),
        ("http_1_0", [raw_request(event, signed, version="1.0")]),
        ("pipelined", [raw_request(event, signed), raw_request(other, signed_headers(other)),
                       raw_request(event, {"Content-Type": "application/json"})]),
    ]
    return cases


def test_the_fast_path_answers_as_asgi_does(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ichido import serving

    taken = []
    take = serving.BoundedHttpToolsProtocol._take_webhook
    monkeypatch.setattr(serving.BoundedHttpToolsProtocol, "_take_webhook",
                        lambda self, *args: (taken.append(1), take(self, *args))[1])
    cases = webhook_cases()  # the same bytes to both servers
    answers: dict[str, list[bytes]] = {}
    for name, wrapped in (("fast", False), ("asgi", True)):
        settings = Settings(database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
                            webhook_secrets=(SECRET,))
        app = in_process_app(settings)

        async def plain(scope: dict, receive: object, send: object, app: object = app) -> None:
            await app(scope, receive, send)  # type: ignore[operator]  # an ASGI app

        with ThreadedServer(plain if wrapped else app, settings=settings) as running:
            answers[name] = [exchange(running, *requests) for _, requests in cases]
        app.close()
        if name == "fast":
            # the first request of each case (those pipelined behind it wait, through ASGI)
            assert len(taken) == len(cases)
            taken.clear()
    assert not taken
    names = [name for name, _ in cases]
    assert dict(zip(names, answers["fast"])) == dict(zip(names, answers["asgi"]))
