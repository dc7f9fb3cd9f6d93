"""DynamoDB as the database: a handler's transaction is one ``TransactWriteItems``.

A handler does not run SQL here. Its ``tx`` collects Put, Update, Delete and ConditionCheck
items, plain Python values in and out (boto3's serializer), and reads with a consistent
``GetItem``. Nothing is written until the event's transaction commits, together with the
processed marker, or not at all (I2, docs/invariants.md). DynamoDB allows 100 items in one
transaction: the item past that raises ``TransactionTooLarge`` at once, so nothing is written
rather than a part.
Reads are not part of the transaction: guard what a handler read with a condition on the
write (``condition="#status = :seen"``), which DynamoDB checks at commit.
"""

from __future__ import annotations

import contextlib
import uuid
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Iterator, Mapping, Sequence

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ichido.db.base import Database
from ichido.db.migrations import Step
from ichido.errors import ConfigError, IchidoError, StorageUnavailable

MAX_ITEMS = 100  # DynamoDB's limit of items per TransactWriteItems (4 MB in all)

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


class TransactionTooLarge(IchidoError):
    """More items than one DynamoDB transaction takes; nothing of it was written."""

    code = "transaction_too_large"


class SqlNotSupported(IchidoError):
    """A handler written for SQL ran on DynamoDB."""

    code = "no_sql_on_dynamodb"


class TransactionCancelled(IchidoError):
    """DynamoDB refused the transaction; ``reasons`` has one code per item (``None`` for the
    items that were fine), e.g. ``ConditionalCheckFailed`` or ``TransactionConflict``."""

    code = "transaction_cancelled"

    def __init__(self, message: str, reasons: list[str | None],
                 items: list[dict[str, Any] | None] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons
        #: per item, what it held when its condition failed, if the item asked for it
        #: (``ReturnValuesOnConditionCheckFailure: ALL_OLD``) and existed; else None
        self.items: list[dict[str, Any] | None] = items or [None] * len(reasons)


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serialize(_numbers(value)) for name, value in values.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _plain(_deserialize(value)) for name, value in item.items()}


class DynamoTransaction:
    """What a handler's ``tx`` is on DynamoDB. ``names``/``values`` are the expression
    attribute names (``#x``) and values (``:x``, plain Python) of the item's expressions."""

    def __init__(self, database: "DynamoDatabase", reserved: int = 0) -> None:
        self.database = database
        self.items: list[dict[str, Any]] = []
        self.limit = MAX_ITEMS - reserved

    def put(self, table: str, item: Mapping[str, Any], *, condition: str | None = None,
            names: Mapping[str, str] | None = None,
            values: Mapping[str, Any] | None = None) -> None:
        self._add("Put", {"TableName": table, "Item": to_item(item)}, condition, names, values)

    def update(self, table: str, key: Mapping[str, Any], expression: str, *,
               condition: str | None = None, names: Mapping[str, str] | None = None,
               values: Mapping[str, Any] | None = None) -> None:
        self._add("Update", {"TableName": table, "Key": to_item(key),
                             "UpdateExpression": expression}, condition, names, values)

    def delete(self, table: str, key: Mapping[str, Any], *, condition: str | None = None,
               names: Mapping[str, str] | None = None,
               values: Mapping[str, Any] | None = None) -> None:
        self._add("Delete", {"TableName": table, "Key": to_item(key)}, condition, names, values)

    def condition_check(self, table: str, key: Mapping[str, Any], condition: str, *,
                        names: Mapping[str, str] | None = None,
                        values: Mapping[str, Any] | None = None) -> None:
        self._add("ConditionCheck", {"TableName": table, "Key": to_item(key)}, condition,
                  names, values)

    def get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """A consistent read (it sees every committed write, never this transaction's own)."""
        return self.database.get(table, key)

    def execute(self, sql: str, params: Any = ()) -> Any:
        raise SqlNotSupported("a DynamoDB transaction runs no SQL: use tx.put, tx.update, "
                              "tx.delete, tx.condition_check and tx.get")

    executemany = execute

    def _add(self, kind: str, body: dict[str, Any], condition: str | None,
             names: Mapping[str, str] | None, values: Mapping[str, Any] | None) -> None:
        if len(self.items) >= self.limit:
            raise TransactionTooLarge(
                f"a DynamoDB transaction holds at most {MAX_ITEMS} items ({MAX_ITEMS - self.limit}"
                f" are ichido's own): this {kind} would be item {len(self.items) + 1} of the "
                f"handlers'; nothing was written")
        if condition:
            body["ConditionExpression"] = condition
        if names:
            body["ExpressionAttributeNames"] = dict(names)
        if values:
            body["ExpressionAttributeValues"] = to_item(values)
        self.items.append({kind: body})


class DynamoDatabase(Database):
    """One table of ichido's own (``dynamodb://TABLE``) and the client every role shares; the
    app's tables are the app's (the template, or its own code, creates them)."""

    engine = "dynamodb"

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self.client = client or boto3.client("dynamodb")

    @classmethod
    def from_url(cls, url: str, client: Any = None) -> "DynamoDatabase":
        """``dynamodb://TABLE``; region and endpoint are boto3's own settings (``AWS_REGION``,
        ``AWS_ENDPOINT_URL``)."""
        table = url.split("://", 1)[-1].strip("/")
        if not table:
            raise ConfigError("name the table: ICHIDO_DATABASE_URL=dynamodb://TABLE")
        return cls(table, client)

    @contextmanager
    def transaction(self) -> Iterator[DynamoTransaction]:
        tx = DynamoTransaction(self)
        yield tx
        self.commit(tx.items)

    @contextmanager
    def reading(self) -> Iterator[DynamoTransaction]:
        """Consistent reads (``tx.get``); whatever is collected here is never written."""
        yield DynamoTransaction(self)

    def commit(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "TransactionCanceledException":
                found = exc.response.get("CancellationReasons", [])
                reasons = [r.get("Code") if r.get("Code") not in (None, "None") else None
                           for r in found]
                held = [from_item(r["Item"]) if r.get("Item") else None for r in found]
                raise TransactionCancelled(f"DynamoDB cancelled the transaction: {reasons}",
                                           reasons, held) from exc
            raise StorageUnavailable(f"DynamoDB refused the transaction: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot reach DynamoDB: {exc}") from exc

    def get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            answer = self.client.get_item(TableName=table, Key=to_item(key), ConsistentRead=True)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"cannot read DynamoDB: {exc}") from exc
        return from_item(answer["Item"]) if "Item" in answer else None

    def ping(self) -> None:
        try:
            self.client.describe_table(TableName=self.table)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"cannot reach DynamoDB table {self.table}: {exc}") from exc

    def store_id(self) -> str:
        try:
            self.client.put_item(TableName=self.table,
                                 Item=to_item({"pk": "store", "sk": "id", "id": uuid.uuid4().hex}),
                                 ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise StorageUnavailable(f"could not name the store: {exc}") from exc
        item = self.get(self.table, {"pk": "store", "sk": "id"})
        assert item is not None  # written above, or by whoever won the race
        return item["id"]

    def migrate(self, steps: Sequence[Step]) -> None:
        """SQL steps have no meaning here; the table is the template's (or ``create_table``)."""
        if steps:
            raise ConfigError("schema steps are SQL and cannot apply to DynamoDB: create the "
                              "app's tables in the template", code="no_sql_on_dynamodb")

    def check(self, steps: Sequence[Step]) -> None:
        self.migrate(steps)
        self.ping()

    def close(self) -> None:
        return None

    def create_table(self, *, stream: bool = False) -> None:
        """The table as deploy/template.yaml declares it (``ichido aws local`` and tests); one
        that exists already is left as it is."""
        extra = ({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}
                 if stream else {})
        with contextlib.suppress(self.client.exceptions.ResourceInUseException):
            self._create_table(extra)

    def _create_table(self, extra: dict[str, Any]) -> None:
        self.client.create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}], **extra)


def _numbers(value: Any) -> Any:
    """boto3 takes Decimal, not float, for numbers."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Numbers back as int where whole, else float; binary as bytes."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value"), bytes):
        return value.value  # boto3's Binary
    return value
