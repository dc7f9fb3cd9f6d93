"""The cost figure: AWS API calls and DynamoDB request units per event on each layout (new
event, cached duplicate, durable duplicate, a Stripe retry, one failed attempt), beside
Powertools' idempotency on DynamoDB, all counted from runs through the real handlers on moto
(``bench.aws_cost`` measures; ``python -m bench cost`` prints the table in docs/aws.md).

What a new event may cost (issue 25): on SQS + DynamoDB its marker and its effect, a small item
each in one transaction (2 + 2 WRU), no read, no counter: a snapshot's marker is also its claim
of its change (so that it and its thin twin apply once, ``ichido.aws.dynamodb_ledger``); on
Streams + DynamoDB also the receiver's put of the compressed body (2 WRU), 6 in all. A thin
event pays for its claim on its snapshot's marker item (2) and its kept read (2). Run with
``-s`` to see the table."""

from __future__ import annotations

import pytest

from bench.aws_cost import (N, measure, powertools, report, sqs_layout, streams_layout,
                            thin_layout)
from bench.aws_meter import Meter
from tests.aws.support import dynamodb_url
from tests.support import migrate_effects

__all__ = ["measure"]


@pytest.fixture
def meter(aws: str) -> Meter:
    return Meter()


def test_cost_sqs_dynamodb(meter: Meter) -> None:
    rows, doubled = sqs_layout(meter, dynamodb_url())
    report("SQS + DynamoDB", rows)
    assert doubled == 0
    new = rows["new event"]
    assert (new["sqs:SendMessage"], new["dynamodb:TransactWriteItems"]) == (1, 1)
    assert "dynamodb:GetItem" not in new and "dynamodb:UpdateItem" not in new
    # the marker (which is also the snapshot's claim of its change, for twins), the effect
    assert (new["write_units"], new.get("read_units", 0)) == (4, 0)
    assert rows["cached duplicate"] == {"dynamodb:UpdateItem": 1, "write_units": 1,
                                        "invocations": 1}
    retry = rows["stripe retry"]  # read first: found, no transaction
    assert "dynamodb:TransactWriteItems" not in retry
    assert (retry["dynamodb:GetItem"], retry["dynamodb:UpdateItem"]) == (1, 1)
    at_once = rows["durable duplicate"]  # the transaction's condition refuses it
    assert at_once["dynamodb:TransactWriteItems"] == 1 and at_once["dynamodb:UpdateItem"] == 1
    assert "dynamodb:GetItem" not in at_once  # the refused marker says what it held
    twin = rows["twin"]  # the thin twin of an applied snapshot: its holder read, its marker
    assert (twin["dynamodb:GetItem"], twin["dynamodb:TransactWriteItems"]) == (1, 1)
    assert (twin["write_units"], twin["read_units"]) == (2, 1)
    assert "stripe:reads" not in twin  # finished before any read of Stripe


def test_cost_sqs_postgres(meter: Meter, postgres_url: str) -> None:
    migrate_effects(postgres_url)
    rows, doubled = sqs_layout(meter, postgres_url)
    report("SQS + PostgreSQL", rows)
    assert doubled == 0
    assert {k for row in rows.values() for k in row if k.startswith("dynamodb")} == set()
    assert rows["new event"]["sqs:SendMessage"] == 1
    assert "sqs:SendMessage" not in rows["cached duplicate"]


def test_cost_streams_dynamodb(meter: Meter) -> None:
    rows, doubled = streams_layout(meter)
    report("DynamoDB Streams", rows)
    assert doubled == 0
    new = rows["new event"]
    assert (new["dynamodb:PutItem"], new["dynamodb:TransactWriteItems"]) == (1, 1)
    # the compressed body's item (2), the marker apart from it (the snapshot's claim), the effect
    assert new["write_units"] <= 6
    assert "dynamodb:UpdateItem" not in new  # no counter
    assert not any(k.startswith("sqs") for row in rows.values() for k in row)
    assert rows["durable duplicate"]["dynamodb:PutItem"] == 1  # the refused conditional put


def test_cost_powertools_idempotency_beside_it(meter: Meter) -> None:
    rows, doubled = powertools(meter)
    report("SQS + Powertools idempotency (DynamoDB)", rows)
    assert doubled == 0 and N == 10
    new = rows["new event"]
    assert (new["dynamodb:PutItem"], new["dynamodb:UpdateItem"]) == (2, 1)  # marker, effect
    assert rows["durable duplicate"]["dynamodb:PutItem"] == 1  # the refused INPROGRESS put


def test_cost_thin_sqs_dynamodb(meter: Meter) -> None:
    """A thin notification: its object read once and kept (the ``fetched`` item), then the
    snapshot layout's transaction; a retry or a duplicate reads the store, not Stripe."""
    rows, doubled = thin_layout(meter)
    report("Thin events, SQS + DynamoDB", rows)
    assert doubled == 0
    new = rows["new event"]
    assert (new["stripe:reads"], new["dynamodb:PutItem"], new["dynamodb:TransactWriteItems"]) \
        == (1, 1, 1)
    assert all("stripe:reads" not in rows[case]
               for case in ("cached duplicate", "durable duplicate", "stripe retry", "twin"))
    assert rows["failed attempt"]["stripe:reads"] == 1  # read and kept before the handler failed
    assert "dynamodb:TransactWriteItems" not in rows["stripe retry"]
    assert (new["write_units"], new["read_units"]) == (8, 2)  # marker, claim, effect, kept read
    twin = rows["twin"]  # the snapshot of an applied thin event: the refused transaction says
    assert "dynamodb:GetItem" not in twin  # who claimed the change, then its twin marker
    assert (twin["dynamodb:TransactWriteItems"], twin["write_units"]) == (2, 6)
