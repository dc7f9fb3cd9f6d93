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


@pytest.mark.parametrize("server", [{"keepalive_seconds": 0.3}], indirect=True)
def test_an_idle_kept_alive_connection_is_closed(server: ThreadedServer) -> None:
    body = make_event()
    sock = connect(server)
    sock.sendall(request_head(body) + body)
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    assert read_until_closed(sock) == b""
    sock.close()


@pytest.mark.parametrize("server", [{"max_connections": 3, "header_timeout_seconds": 300}],
                         indirect=True)
def test_connections_past_the_limit_are_refused_and_the_limit_frees_up(
        server: ThreadedServer) -> None:
    held = [connect(server) for _ in range(3)]
    held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # all three accepted by now
    assert read_response(held[0]).startswith(b"HTTP/1.1 200 ")
    extra = connect(server)
    answer = read_until_closed(extra)
    extra.close()
    assert answer.startswith(b"HTTP/1.1 503 ") and b'"too_many_connections"' in answer
    held.pop().close()  # its slot is free once the server has seen the close
    wait_until(lambda: deliver(server).status_code == 200, timeout=HANG,
               message="a delivery once a held connection closed")
    for sock in held:
        sock.close()
