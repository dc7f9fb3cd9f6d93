"""Peers: the same signed stream and the same handler through ichido, the naive design and
Powertools for AWS Lambda's idempotency utility; committed effects per second, same run.

- ``ichido``: ``ichido serve --workers 0`` + one ``ichido worker`` process (the worker under
  comparison), both on the backend under test; rate = unique events / (first request → last
  effect committed).
- ``naive`` (SQLite only): "store every event, scan for the id": a table of events with no index
  on the id; per request: verify, parse, ``SELECT`` the id (a full scan), and if absent insert
  the event and apply the effect in one transaction, inside the HTTP request.
- ``powertools``: ``aws_lambda_powertools`` ``idempotent_function`` with
  ``RedisCachePersistenceLayer`` (Redis at ICHIDO_BENCH_REDIS_URL, key = the event id via
  ``event_key_jmespath="id"``) around the same handler, which writes its effect to the backend
  under test (SQLite file or PostgreSQL, autocommit); run inside the HTTP request, as a Lambda
  behind a function URL would.

The peers run inline in a raw ASGI app on the same uvicorn settings (the cheapest HTTP layer, to
favour them); their rate is effects committed per second of load. Requires
``pip install 'aws-lambda-powertools[redis,aws-sdk]>=3.37,<4'`` (not one of ichido's dependencies).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
import uuid
import warnings
from typing import Any, Callable

import orjson

from ichido.testing import IchidoProcess
from bench import load, processes, report, stores, stream

APP = "bench.apps:app"
TARGET_VS_POWERTOOLS = 3.0
POWERTOOLS_REQUIREMENT = "aws-lambda-powertools[redis,aws-sdk]>=3.37,<4"
EFFECTS_SQL = ("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL, type TEXT NOT NULL,"
               " attempt INTEGER NOT NULL)")


def _powertools_missing() -> bool:
    try:
        import aws_lambda_powertools.utilities.idempotency  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        return True
    return False


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        return _serve(argv[1:])
    p = report.parser("peers", __doc__.splitlines()[0])
    p.add_argument("--backend", choices=[*stores.BACKENDS, "all"], default="all")
    p.add_argument("--rounds", type=int, help="rounds, order alternating (default 2, quick 1)")
    p.add_argument("--seconds", type=float, help="seconds of load per design and round "
                   "(default 8, quick 2)")
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args(argv)
    if _powertools_missing():
        print("peers needs Powertools for AWS Lambda (Python) with its Redis extra (and boto3, "
              "which its idempotency package imports); it is not one of ichido's dependencies. "
              "Install it into this venv:\n"
              f"  .venv/bin/pip install '{POWERTOOLS_REQUIREMENT}'", file=sys.stderr)
        return 2
    load.require_wrk()
    rounds = args.rounds or (1 if args.quick else 2)
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    backends = stores.check_services(stores.BACKENDS if args.backend == "all" else (args.backend,))
    if backends and "sqlite" in backends and not stores.check_services(["postgres+redis"]):
        report.say("peers: Powertools needs Redis; it is not reachable, so only ichido and naive run")
    results = []
    with stores.workdir("peers") as wd:
        for backend in backends:
            results.append(report.guarded(backend, run_backend,
                                      wd, rounds, seconds, args.connections))
    everything = results
    results, status = report.split_failed(results)
    rows = []
    for r in results:
        for design in ("ichido", "naive", "powertools"):
            if r.get(f"eps_{design}") is not None:
                rows.append([r["backend"], design, r[f"eps_{design}"],
                             r.get(f"ratio_vs_{design}") if design != "ichido" else None,
                             r.get(f"rows_{design}"), r.get(f"duplicate_effects_{design}"),
                             r.get(f"errors_{design}")])
    print(report.table(f"peers: committed effects/s, same stream and handler, {rounds} round(s) x "
                  f"{seconds:g} s (medians)",
                  ["backend", "design", "effects/s", "ichido/this", "events done",
                   "double effects", "errors"], rows))
    print(f"\ntarget: ichido >= {TARGET_VS_POWERTOOLS:g} x powertools")
    print(f"machine: {report.machine()}")
    report.emit(args, {"benchmark": "peers", "quick": args.quick, "rounds": rounds,
                  "seconds": seconds, "machine": report.machine(), "results": everything,
                  "target_ratio_vs_powertools": TARGET_VS_POWERTOOLS,
                  **(results[0] if len(results) == 1 else {})})
    return status


def run_backend(backend: str, wd: Any, rounds: int, seconds: float,
                connections: int) -> dict[str, Any]:
    report.say(f"peers [{backend}]")
    designs = ["ichido", "powertools"] + (["naive"] if backend == "sqlite" else [])
    rates: dict[str, list[float]] = {d: [] for d in designs}
    out: dict[str, Any] = {"backend": backend}
    with stores.fresh_store(backend, "peers_ichido", wd) as store, \
            stores.fresh_store(backend, "peers_pt", wd) as ptstore:
        stores.migrate(store, APP)
        prefix = f"bench-pt-{uuid.uuid4().hex[:8]}"
        servers: dict[str, IchidoProcess] = {}
        try:
            servers["ichido"] = processes.serve_ichido(store, workers=0, app=APP)
            worker = processes.start_worker(store, app=APP)
            servers["worker"] = worker
            servers["powertools"] = _peer("powertools", {
                "PEER_DATABASE_URL": ptstore.database_url, "PEER_REDIS_URL": stores.REDIS_URL,
                "PEER_KEY_PREFIX": prefix})
            if "naive" in designs:
                servers["naive"] = _peer("naive", {"PEER_DATABASE_URL":
                                                   f"sqlite:///{wd / 'naive.db'}"})
            warm = stream.write_requests(stream.make_stream(1500), wd / "warm.req")
            for design in designs:
                load.run_wrk(servers[design].port, warm, 1, connections=connections)
            _wait_idle(store)
            for index in range(rounds):
                order = designs if index % 2 == 0 else designs[::-1]
                for design in order:
                    deliveries = stream.make_stream(int(max(20_000, 6_000 * seconds)))
                    path = stream.write_requests(deliveries, wd / "peers.req")
                    if design == "ichido":
                        eps = _ichido(servers["ichido"], store, path, seconds, connections)
                    else:
                        db = (stores.Store("sqlite", f"sqlite:///{wd / 'naive.db'}", None)
                              if design == "naive" else ptstore)
                        before = db.count("SELECT count(*) FROM effects")
                        result = load.run_wrk(servers[design].port, path, seconds,
                                           connections=connections)
                        eps = (db.count("SELECT count(*) FROM effects") - before) / result.seconds
                        out[f"errors_{design}"] = out.get(f"errors_{design}", 0) + result.errors
                    rates[design].append(eps)
                    report.say(f"  round {index + 1}/{rounds} {design:10s} {eps:9,.0f} effects/s")
                    path.unlink()
            out["rows_ichido"] = store.count("SELECT count(*) FROM ichido_events")
            out["duplicate_effects_ichido"] = store.count(
                "SELECT count(*) - count(DISTINCT event_id) FROM effects")
            out["rows_powertools"] = ptstore.count("SELECT count(DISTINCT event_id) FROM effects")
            out["duplicate_effects_powertools"] = ptstore.count(
                "SELECT count(*) - count(DISTINCT event_id) FROM effects")
            if "naive" in designs:
                naive = stores.Store("sqlite", f"sqlite:///{wd / 'naive.db'}", None)
                out["rows_naive"] = naive.count("SELECT count(*) FROM naive_events")
                out["duplicate_effects_naive"] = naive.count(
                    "SELECT count(*) - count(DISTINCT event_id) FROM effects")
        finally:
            for server in servers.values():
                server.close()
            stores.delete_redis_prefix(stores.REDIS_URL, f"{prefix}*")
    for design, values in rates.items():
        out[f"eps_{design}"] = round(report.median(values), 1)
    for design in designs:
        if design != "ichido":
            out[f"ratio_vs_{design}"] = round(report.median(
                [i / p for i, p in zip(rates["ichido"], rates[design]) if p]), 3)
    out["target_ratio_vs_powertools"] = TARGET_VS_POWERTOOLS
    out["rates"] = rates
    return out


def _peer(design: str, env: dict[str, str]) -> IchidoProcess:
    return processes.serve_module("peers", "--serve", design,
                                  env={"STRIPE_WEBHOOK_SECRET": stream.SECRET, **env})


def _wait_idle(store: stores.Store, timeout: float = 120) -> None:
    """Let ichido's worker finish the warm-up before anything is timed."""
    stores.wait_for(lambda: store.count("SELECT count(*) FROM effects")
               >= store.count("SELECT count(*) FROM ichido_events"), timeout, 0.05)


def _ichido(server: IchidoProcess, store: stores.Store, path: Any, seconds: float,
            connections: int) -> float:
    _wait_idle(store)
    before = store.count("SELECT count(*) FROM ichido_events")
    t0 = time.monotonic()
    load.run_wrk(server.port, path, seconds, connections=connections)
    total = store.count("SELECT count(*) FROM ichido_events")
    if not stores.wait_for(lambda: store.count("SELECT count(*) FROM effects") >= total, 600, 0.02):
        raise RuntimeError("ichido's worker did not finish")
    return (total - before) / (time.monotonic() - t0)


# -- the peer servers (run as `python -m bench peers --serve NAME --port P`) --------------------

def _serve(argv: list[str]) -> int:
    design, port = argv[0], processes.server_port_arg("peers", argv[1:])
    process = {"naive": _naive, "powertools": _powertools}[design]()
    processes.serve_asgi(_asgi(process), port)
    return 0


def _asgi(process: Callable[[bytes, str | None], tuple[int, bytes]]) -> Any:
    """A raw ASGI app around a synchronous ``process(body, signature) -> (status, body)``."""
    headers = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await processes.answer_lifespan(receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["method"] != "POST":
            status, body = 200, b'{"status":"ok"}'
        else:
            sig = next((v.decode("latin-1") for k, v in scope["headers"]
                        if k == b"stripe-signature"), None)
            status, body = process(b"".join(chunks), sig)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _verified(body: bytes, sig: str | None) -> dict[str, Any] | None:
    from ichido import signature
    from ichido.errors import SignatureError

    try:
        signature.verify(body, sig, [os.environ["STRIPE_WEBHOOK_SECRET"]], tolerance=300)
        doc = orjson.loads(body)
    except (SignatureError, orjson.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None


def _sqlite(url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, check_same_thread=False)
    for pragma in ("PRAGMA busy_timeout = 10000", "PRAGMA journal_mode = WAL",
                   "PRAGMA synchronous = NORMAL"):
        conn.execute(pragma)
    conn.execute(EFFECTS_SQL)
    return conn


def _naive() -> Callable[[bytes, str | None], tuple[int, bytes]]:
    conn = _sqlite(os.environ["PEER_DATABASE_URL"])
    # Every event, forever, and no index on the id: each look-up reads the whole table.
    conn.execute("CREATE TABLE IF NOT EXISTS naive_events (id TEXT NOT NULL, type TEXT NOT NULL,"
                 " body BLOB NOT NULL, received_at REAL NOT NULL)")

    def process(body: bytes, sig: str | None) -> tuple[int, bytes]:
        doc = _verified(body, sig)
        if doc is None:
            return 400, b'{"error":"bad request"}'
        if conn.execute("SELECT 1 FROM naive_events WHERE id = ?", (doc["id"],)).fetchone():
            return 200, b'{"status":"duplicate"}'
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO naive_events (id, type, body, received_at)"
                         " VALUES (?, ?, ?, ?)", (doc["id"], doc["type"], body, time.time()))
            handler(doc, conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return 200, b'{"status":"accepted"}'

    return process


def handler(doc: dict[str, Any], conn: Any, mark: str = "?") -> None:
    """The same effect as bench/apps.py's handler: one row in ``effects``."""
    conn.execute(f"INSERT INTO effects (event_id, type, attempt) VALUES ({mark}, {mark}, 1)",
                 (doc["id"], doc["type"]))


def _powertools() -> Callable[[bytes, str | None], tuple[int, bytes]]:
    import redis
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in favour of CachePersistenceLayer (v4)
        from aws_lambda_powertools.utilities.idempotency.persistence.redis import (
            RedisCachePersistenceLayer,
        )

        persistence = RedisCachePersistenceLayer(
            client=redis.Redis.from_url(os.environ["PEER_REDIS_URL"]))
    config = IdempotencyConfig(event_key_jmespath="id", raise_on_no_idempotency_key=True,
                               expires_after_seconds=73 * 3600)
    url = os.environ["PEER_DATABASE_URL"]
    if url.startswith("sqlite"):
        conn: Any = _sqlite(url)
        mark = "?"
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        conn.execute(EFFECTS_SQL)
        mark = "%s"

    @idempotent_function(data_keyword_argument="event", persistence_store=persistence,
                         config=config, key_prefix=os.environ["PEER_KEY_PREFIX"])
    def apply(event: dict[str, Any]) -> dict[str, Any]:
        handler(event, conn, mark)  # autocommit: the effect commits here
        return {"id": event["id"], "status": "processed"}

    def process(body: bytes, sig: str | None) -> tuple[int, bytes]:
        doc = _verified(body, sig)
        if doc is None:
            return 400, b'{"error":"bad request"}'
        try:
            return 200, orjson.dumps(apply(event=doc))
        except IdempotencyAlreadyInProgressError:
            return 409, b'{"error":"in progress"}'  # Stripe retries later

    return process
