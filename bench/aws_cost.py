"""``python -m bench cost [--json]``: AWS calls and DynamoDB request units per event, counted
through the real handlers (receiver, queue or stream, worker) on moto, for each layout and
each case, with Powertools' idempotency beside them in the same run; and a check that no event
had two effects.

Counted per event over batches of ten (the poller's ReceiveMessage and DeleteMessageBatch are
shared by a batch). Left out: the local poller's ChangeMessageVisibility (Lambda waits out the
visibility timeout instead) and Lambda's own stream reads (free for Lambda triggers). Units are
estimated as AWS bills them (``bench.aws_meter``). ``tests/aws/test_cost.py`` runs the same
measures and holds the figures; the table in docs/aws.md is this command's output.

The cases: a new event; a cached duplicate (the receiver's seen tier answers); a durable
duplicate (another receiver, so the copy reaches the worker at once); a Stripe retry (a copy
of an event sent a minute or more after Stripe created it: the worker reads its marker first);
one failed attempt; a twin (the thin twin of an applied snapshot, from the local Stripe:
``bench.aws_thin``). The thin layout (``thin+sqs+dynamodb``) takes thin notifications through
the SQS + DynamoDB layout with the fetch stage, its reads of the local Stripe counted
(``stripe:reads``); its twin is the other order, the snapshot of an applied thin event.
Powertools' twin is ``null``: it has no twin rule (a twin would apply again).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import uuid
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from bench.aws_meter import Meter, per_event
from bench.aws_thin import SUCCEEDED, Notes, Snapshots, stripe_world

N = 10
CASES = ("new event", "cached duplicate", "durable duplicate", "stripe retry",
         "failed attempt", "twin")
IGNORED = ("sqs:ChangeMessageVisibilityBatch", "sqs:GetQueueAttributes")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
_WORDS = ("the of payment card customer order charge amount refund invoice receipt "
          "shipping").split()


def realistic_event(type: str = "charge.succeeded", created: int | None = None) -> bytes:
    """About the size of a real charge event (2.7 KB), and about as compressible: half of its
    description is random ids (zlib takes it to about 1.3 KB; real events compress better)."""
    from tests.support import make_event

    rnd = random.Random()
    text = " ".join(uuid.uuid4().hex[:rnd.randint(4, 12)] if rnd.random() < .5
                    else rnd.choice(_WORDS) for _ in range(400))[:2100]
    obj = {"id": f"ch_{uuid.uuid4().hex[:24]}", "object": "charge", "amount": 1200,
           "currency": "jpy", "metadata": {"order": "o_1"},
           "billing_details": {"email": "buyer@example.com", "name": "Buyer"},
           "outcome": {"network_status": "approved_by_network", "type": "authorized"},
           "payment_method_details": {"card": {"brand": "visa", "last4": "4242"}},
           "description": text}
    return make_event(type, obj=obj, created=created)


class Deliver:
    """Two receivers (two Lambda execution environments, each its own seen tier)."""

    def __init__(self, make_receiver: Callable[[], Callable],
                 headers: Callable[[bytes], dict[str, str]] | None = None) -> None:
        self.make = make_receiver
        self.headers = headers

    def receivers(self) -> tuple[Callable, Callable]:
        return self.make(), self.make()

    def __call__(self, receiver: Callable, body: bytes) -> None:
        from tests.aws.support import function_url_event

        headers = self.headers(body) if self.headers else None
        answer = receiver(function_url_event(body, headers), None)
        assert answer["statusCode"] == 200, answer


def measure(meter: Meter, deliver: Deliver, poll: Callable[[], Any], failing: int,
            events: Any = None) -> dict[str, dict[str, float]]:
    """Each case's calls and units per event (``failing``: how many failing events one poll
    takes; one on a Streams shard, whose failure holds the records after it). ``events``:
    where the bodies come from (``bench.aws_thin``; without twins, the twin case is left out)."""
    events = events or Snapshots()
    rows = {}
    bodies = events.new(N)
    first, again = deliver.receivers()
    start = meter.reading()
    for body in bodies:
        deliver(first, body)
    poll()
    rows["new event"] = per_event(start, meter.reading(), N)
    start = meter.reading()
    for body in bodies:
        deliver(first, body)
    rows["cached duplicate"] = per_event(start, meter.reading(), N)
    start = meter.reading()
    for body in bodies:
        deliver(again, body)
    poll()
    rows["durable duplicate"] = per_event(start, meter.reading(), N)
    late = events.late(N)
    third, fourth = deliver.receivers()
    for body in late:
        deliver(third, body)
    poll()
    start = meter.reading()
    for body in late:
        deliver(fourth, body)
    poll()
    rows["stripe retry"] = per_event(start, meter.reading(), N)
    bad = events.failing(failing)
    for body in bad:
        deliver(first, body)
    start = meter.reading()
    poll()
    rows["failed attempt"] = per_event(start, meter.reading(), failing)
    poll()  # the failed events' second attempt applies them
    twins = events.twins(N)
    if twins is not None:
        for applied, _ in twins:
            deliver(first, applied)
        poll()
        start = meter.reading()
        for _, twin in twins:
            deliver(first, twin)
        poll()
        rows["twin"] = per_event(start, meter.reading(), N)
    return {case: {k: v for k, v in row.items() if k not in IGNORED}
            for case, row in rows.items()}


def fails_once(record: Callable) -> Callable:
    def handler(event: Any, tx: Any) -> None:
        if event.attempt == 1:
            raise RuntimeError("planned failure")
        record(event, tx)
    return handler


def doubles(counts: Counter) -> int:
    """Events applied more than once (each effect is one item or row per application)."""
    return sum(1 for n in counts.values() if n > 1)


def with_stripe(meter: Meter, layout: Any) -> Any:
    """The local Stripe, the layout taking its events and its fetch stage reading from it."""
    world = stripe_world(meter)
    layout.settings = layout.settings.with_(webhook_secrets=world.secrets)
    world.wire(layout.worker.applier, layout.ledger)
    return world


def sqs_layout(meter: Meter, database_url: str, thin: bool = False) -> tuple[dict, int]:
    """The SQS layout; ``thin``: its events are thin notifications (the thin layout)."""
    import boto3

    from tests.aws.conftest import make_queues
    from tests.aws.support import SqsLayout

    sqs = meter.attach(boto3.client("sqs"))
    dynamodb = meter.attach(boto3.client("dynamodb"))
    layout = SqsLayout(database_url, *make_queues(), sqs=sqs, dynamodb=dynamodb)
    world = with_stripe(meter, layout)
    events: Any = Notes(world) if thin else Snapshots(world)
    layout.handlers.on("charge.succeeded")(layout.effects.record)
    layout.handlers.on("test.fails_once")(fails_once(layout.effects.record))
    layout.handlers.on(SUCCEEDED)(events.handler(layout.effects.record) if thin
                                  else layout.effects.record)
    layout.poller.handler = meter.counted(layout.poller.handler)
    try:
        rows = measure(meter, Deliver(lambda: meter.counted(layout.receiver()), world.headers),
                       layout.poller.poll_once, N, events)
        return rows, doubles(layout.effect_counts())
    finally:
        layout.close()
        world.close()


def thin_layout(meter: Meter) -> tuple[dict, int]:
    """Thin notifications through the SQS + DynamoDB layout, with the fetch stage."""
    return sqs_layout(meter, _dynamodb_url(), thin=True)


def streams_layout(meter: Meter) -> tuple[dict, int]:
    import boto3

    from tests.aws.support import StreamsLayout

    dynamodb = meter.attach(boto3.client("dynamodb"))
    layout = StreamsLayout(dynamodb=dynamodb)
    world = with_stripe(meter, layout)
    layout.handlers.on("test.fails_once")(fails_once(layout.effects.record))
    layout.handlers.on(SUCCEEDED)(layout.effects.record)
    layout.poller.handler = meter.counted(layout.poller.handler)
    try:
        rows = measure(meter, Deliver(lambda: meter.counted(layout.receiver()), world.headers),
                       layout.poller.poll_once, 1,  # one shard: a failure holds what follows
                       Snapshots(world))
    finally:
        world.close()
    return rows, doubles(layout.effects.counts(None))


def powertools(meter: Meter) -> tuple[dict, int]:
    """Powertools' pattern on the same SQS layout: a put (INPROGRESS) and an update
    (COMPLETED) per event, the handler's own write outside that (no shared transaction)."""
    import boto3
    from aws_lambda_powertools.utilities.idempotency import (DynamoDBPersistenceLayer,
                                                             IdempotencyConfig,
                                                             idempotent_function)

    from ichido.aws.receiver import lambda_handler
    from ichido.aws.runner import SqsPoller
    from ichido.aws.stores import QueueWrite
    from ichido.config import Settings
    from ichido.queue.sqs import SqsQueue
    from ichido.seen.memory import MemorySeenCache
    from tests.aws.conftest import make_queues
    from tests.aws.support import DynamoEffects
    from tests.support import SECRET

    sqs = meter.attach(boto3.client("sqs"))
    dynamodb = meter.attach(boto3.client("dynamodb"))
    table = f"powertools-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb").create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    effects = DynamoEffects()
    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb)
    attempts: dict[str, int] = {}

    @idempotent_function(data_keyword_argument="event", persistence_store=persistence,
                         config=IdempotencyConfig(event_key_jmespath="id"))
    def process(event: dict) -> dict:
        if event["type"] == "test.fails_once" and not attempts.setdefault(event["id"], 0):
            attempts[event["id"]] += 1
            raise RuntimeError("planned failure")
        dynamodb.put_item(TableName=effects.table, Item={"pk": {"S": event["id"]},
                                                          "sk": {"S": uuid.uuid4().hex}})
        return {"applied": event["id"]}

    def worker(batch: dict, _context: Any) -> dict:
        failures = []
        for record in batch["Records"]:
            try:
                process(event=json.loads(record["body"]))
            except RuntimeError:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    queue, _dlq = make_queues()
    poller = SqsPoller(queue, meter.counted(worker), failed_visibility=0, client=sqs)
    settings = Settings(webhook_secrets=(SECRET,))
    inbox = QueueWrite(SqsQueue(queue, client=sqs))  # no counters: Powertools keeps none
    rows = measure(meter, Deliver(lambda: meter.counted(lambda_handler(
        settings, inbox, MemorySeenCache(3600, 1000)))), poller.poll_once, N)
    return rows, doubles(effects.counts(None))


@contextmanager
def moto() -> Iterator[str]:
    """moto's server (``ichido.aws.local.start_moto``), boto3 pointed at it."""
    from ichido.aws.local import start_moto

    server = start_moto()
    host, port = server.get_host_and_port()
    saved = {name: os.environ.get(name) for name in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update({**AWS_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"})
    try:
        yield os.environ["AWS_ENDPOINT_URL"]
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


def json_row(rows: dict[str, dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case in CASES:
        row = rows.get(case)
        out[case] = None if row is None else {
            "wru": row.get("write_units", 0.0), "rru": row.get("read_units", 0.0),
            "invocations": row.get("invocations", 0.0),
            "calls": {k: v for k, v in row.items() if ":" in k}}
    return out


def report(name: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{name}")
    for case in (case for case in CASES if case in rows):
        row = rows[case]
        calls = ", ".join(f"{k.split(':')[1]} {v:g}" for k, v in row.items() if ":" in k)
        print(f"  {case:18} | {calls or '-':70} | WRU {row.get('write_units', 0):g}"
              f" | RRU {row.get('read_units', 0):g} | invocations {row.get('invocations', 0):g}")


def postgres_url() -> str | None:
    """A migrated schema's URL if PostgreSQL answers (``ICHIDO_BENCH_POSTGRES_URL``)."""
    url = os.environ.get("ICHIDO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=3).close()
    except Exception as exc:  # the layout is left out, and says why
        print(f"sqs+postgres left out: PostgreSQL is not reachable ({exc})", file=sys.stderr)
        return None
    return url


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cost")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    layouts: dict[str, Any] = {}
    double_effects = 0
    with moto():
        runs: list[tuple[str, str, Callable[[Meter], tuple[dict, int]]]] = [
            ("sqs+dynamodb", "SQS + DynamoDB", lambda m: sqs_layout(m, _dynamodb_url())),
            ("streams+dynamodb", "Streams + DynamoDB", streams_layout),
            ("thin+sqs+dynamodb", "Thin events, SQS + DynamoDB", thin_layout),
            ("powertools", "SQS + Powertools idempotency (DynamoDB)", powertools)]
        base = postgres_url()
        if base is not None:
            runs.insert(1, ("sqs+postgres", "SQS + PostgreSQL", lambda m: _postgres(m, base)))
        for key, name, run in runs:
            rows, doubled = run(Meter())
            report(name, rows)
            layouts[key] = json_row(rows)
            double_effects += doubled
    print(f"\nevents applied twice: {double_effects}")
    if args.json:
        print(json.dumps({"benchmark": "cost", "events_per_case": N,
                          "double_effects": double_effects, "layouts": layouts}))
    return 1 if double_effects else 0


def _dynamodb_url() -> str:
    from tests.aws.support import dynamodb_url

    return dynamodb_url()


def _postgres(meter: Meter, base: str) -> tuple[dict, int]:
    from tests.support import migrated_schema

    with migrated_schema(base) as url:
        return sqs_layout(meter, url)
