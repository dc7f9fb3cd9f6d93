"""The ceiling: a bare ASGI app that reads the whole body and answers 200 with a small JSON.

Served by the same uvicorn settings as ``ichido serve`` (httptools, uvloop, one process):
``python -m bench bare --port 8001``. It is a comparison server, not a benchmark.
"""

from __future__ import annotations

from typing import Any

from bench.processes import answer_lifespan, serve_asgi, server_port_arg

_HEADERS = [(b"content-type", b"application/json")]
_BODY = b'{"status":"ok"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body, as any receiver must
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


def main(argv: list[str]) -> int:
    serve_asgi(app, server_port_arg("bare", argv))
    return 0
