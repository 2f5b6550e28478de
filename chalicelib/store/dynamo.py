"""A thin, typed layer over the low-level DynamoDB client.

Why the client and not boto3's resource API: clients are thread-safe (the poller
and local server use threads), cheaper to build at cold start, and transactions
need the client anyway. Items go in and come out as plain Python values: numbers
come back as int when integral, float otherwise (never Decimal).
"""
from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any, Iterable, Iterator

from .. import aws
from ..config import settings


@functools.lru_cache(maxsize=None)
def _codec():
    """boto3's (serializer, deserializer), built on first use: importing boto3 costs cold start."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


class ConditionFailed(Exception):
    """A conditional write lost: the item changed (or vanished) under us."""


def _to_dynamo_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo_value(v) for v in value]
    return value


def _from_dynamo_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_value(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo_value(v) for v in value}
    return value


def serialize(item: dict) -> dict:
    serializer = _codec()[0]
    return {k: serializer.serialize(_to_dynamo_value(v)) for k, v in item.items()}


def serialize_value(value: Any) -> dict:
    return _codec()[0].serialize(_to_dynamo_value(value))


def deserialize(item: dict) -> dict:
    deserializer = _codec()[1]
    return {k: _from_dynamo_value(deserializer.deserialize(v)) for k, v in item.items()}


class Expr:
    """Builds expression attribute names/values with collision-free placeholders."""

    def __init__(self, names: dict | None = None, values: dict | None = None):
        self.names = dict(names or {})
        self.values = {k: serialize_value(v) for k, v in (values or {}).items()}
        self._n = 0

    def name(self, attr: str) -> str:
        self._n += 1
        placeholder = f"#n{self._n}"
        self.names[placeholder] = attr
        return placeholder

    def value(self, value: Any) -> str:
        self._n += 1
        placeholder = f":v{self._n}"
        self.values[placeholder] = serialize_value(value)
        return placeholder

    def update_expression(self, set_: dict | None, remove: Iterable[str], add: dict | None,
                          delete: dict | None) -> str:
        parts = []
        if set_:
            parts.append("SET " + ", ".join(f"{self.name(k)} = {self.value(v)}" for k, v in set_.items()))
        remove = list(remove)
        if remove:
            parts.append("REMOVE " + ", ".join(self.name(k) for k in remove))
        if add:
            parts.append("ADD " + ", ".join(f"{self.name(k)} {self.value(v)}" for k, v in add.items()))
        if delete:
            parts.append("DELETE " + ", ".join(f"{self.name(k)} {self.value(v)}" for k, v in delete.items()))
        return " ".join(parts)

    def apply(self, request: dict) -> dict:
        if self.names:
            request["ExpressionAttributeNames"] = self.names
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        return request


def _is_condition_failure(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


class Table:
    """One DynamoDB table, named by a Settings attribute (resolved at call time)."""

    def __init__(self, settings_attr: str):
        self._settings_attr = settings_attr

    @property
    def name(self) -> str:
        return getattr(settings(), self._settings_attr)

    @staticmethod
    def _client():
        return aws.dynamodb()

    def get(self, key: dict, consistent: bool = True) -> dict | None:
        reply = self._client().get_item(TableName=self.name, Key=serialize(key), ConsistentRead=consistent)
        return deserialize(reply["Item"]) if "Item" in reply else None

    def put(self, item: dict, condition: str | None = None, names: dict | None = None,
            values: dict | None = None) -> None:
        self._write(self._client().put_item, self.put_request(item, condition, names, values))

    def put_request(self, item: dict, condition: str | None = None, names: dict | None = None,
                    values: dict | None = None) -> dict:
        request = {"TableName": self.name, "Item": serialize(item)}
        if condition:
            request["ConditionExpression"] = condition
        return Expr(names, values).apply(request)

    def update_request(self, key: dict, *, set: dict | None = None, remove: Iterable[str] = (),
                       add: dict | None = None, delete: dict | None = None,
                       condition: str | None = None, names: dict | None = None,
                       values: dict | None = None) -> dict:
        expr = Expr(names, values)
        request = {"TableName": self.name, "Key": serialize(key),
                   "UpdateExpression": expr.update_expression(set, remove, add, delete)}
        if condition:
            request["ConditionExpression"] = condition
        return expr.apply(request)

    def update(self, key: dict, *, set: dict | None = None, remove: Iterable[str] = (),
               add: dict | None = None, delete: dict | None = None, condition: str | None = None,
               names: dict | None = None, values: dict | None = None) -> dict:
        """Update and return the whole new item."""
        request = self.update_request(key, set=set, remove=remove, add=add, delete=delete,
                                      condition=condition, names=names, values=values)
        request["ReturnValues"] = "ALL_NEW"
        reply = self._write(self._client().update_item, request)
        return deserialize(reply.get("Attributes", {}))

    def delete_request(self, key: dict, condition: str | None = None, names: dict | None = None,
                       values: dict | None = None) -> dict:
        request = {"TableName": self.name, "Key": serialize(key)}
        if condition:
            request["ConditionExpression"] = condition
        return Expr(names, values).apply(request)

    def delete(self, key: dict, condition: str | None = None, names: dict | None = None,
               values: dict | None = None) -> None:
        self._write(self._client().delete_item, self.delete_request(key, condition, names, values))

    def delete_owned(self, key: dict, owner: int | None = None, owner_attr: str = "user_id") -> bool:
        """Delete the item if it exists (and belongs to `owner`, when given); False otherwise:
        one conditional DeleteItem, so checking ownership costs no read."""
        condition, names, values = "attribute_exists(#k)", {"#k": next(iter(key))}, None
        if owner is not None:
            condition += " AND #o = :o"
            names["#o"], values = owner_attr, {":o": owner}
        try:
            self.delete(key, condition=condition, names=names, values=values)
        except ConditionFailed:
            return False
        return True

    def query(self, key_condition: str, *, names: dict | None = None, values: dict | None = None,
              index: str | None = None, forward: bool = True, limit: int | None = None,
              filter: str | None = None, consistent: bool = False,
              projection: str | None = None) -> Iterator[dict]:
        """All matching items, following pagination (stops after `limit` items)."""
        request = Expr(names, values).apply({
            "TableName": self.name, "KeyConditionExpression": key_condition,
            "ScanIndexForward": forward})
        if index:
            request["IndexName"] = index
        elif consistent:
            request["ConsistentRead"] = True
        if filter:
            request["FilterExpression"] = filter
        if projection:
            request["ProjectionExpression"] = projection
        if limit:
            request["Limit"] = limit
        yielded = 0
        while True:
            reply = self._client().query(**request)
            for raw in reply.get("Items", []):
                yield deserialize(raw)
                yielded += 1
                if limit and yielded >= limit:
                    return
            if "LastEvaluatedKey" not in reply:
                return
            request["ExclusiveStartKey"] = reply["LastEvaluatedKey"]

    def count(self, key_condition: str, *, names: dict | None = None, values: dict | None = None,
              index: str | None = None) -> int:
        """How many items match (Select COUNT: one call per 1 MB of matching items read)."""
        request = Expr(names, values).apply({"TableName": self.name, "KeyConditionExpression": key_condition,
                                             "Select": "COUNT"})
        if index:
            request["IndexName"] = index
        total = 0
        while True:
            reply = self._client().query(**request)
            total += reply.get("Count", 0)
            if "LastEvaluatedKey" not in reply:
                return total
            request["ExclusiveStartKey"] = reply["LastEvaluatedKey"]

    def scan(self) -> Iterator[dict]:
        """Whole-table read: only for small tables (nodes) and admin pages."""
        request: dict = {"TableName": self.name}
        while True:
            reply = self._client().scan(**request)
            for raw in reply.get("Items", []):
                yield deserialize(raw)
            if "LastEvaluatedKey" not in reply:
                return
            request["ExclusiveStartKey"] = reply["LastEvaluatedKey"]

    def batch_get(self, keys: list[dict], consistent: bool = False,
                  projection: str | None = None, names: dict | None = None) -> list[dict]:
        """The items of these keys that exist, in no particular order: one BatchGetItem per
        100 keys (DynamoDB's limit), plus one per round of keys it left unprocessed."""
        found: list[dict] = []
        unique = list({json_key(k): k for k in keys}.values())  # a batch refuses duplicate keys
        for start in range(0, len(unique), 100):
            request: dict = {"Keys": [serialize(k) for k in unique[start:start + 100]],
                             "ConsistentRead": consistent}
            if projection:
                request["ProjectionExpression"] = projection
                if names:
                    request["ExpressionAttributeNames"] = names
            pending = {self.name: request}
            while pending:
                reply = self._client().batch_get_item(RequestItems=pending)
                found.extend(deserialize(raw) for raw in reply.get("Responses", {}).get(self.name, []))
                pending = reply.get("UnprocessedKeys") or {}
        return found

    def batch_delete(self, keys: list[dict]) -> None:
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": serialize(k)}} for k in keys[start:start + 25]]
            pending = {self.name: requests}
            while pending:
                reply = self._client().batch_write_item(RequestItems=pending)
                pending = reply.get("UnprocessedItems") or {}

    @staticmethod
    def _write(call, request: dict) -> dict:
        try:
            return call(**request)
        except Exception as exc:
            if _is_condition_failure(exc):
                raise ConditionFailed(str(exc)) from exc
            raise


def json_key(key: dict) -> str:
    """A key as hashable text (to drop duplicates before a batch)."""
    import json

    return json.dumps(key, sort_keys=True, default=str)


def transact(*operations: tuple[str, dict]) -> None:
    """Atomic multi-item write; operations are ("Put"|"Update"|"Delete"|"ConditionCheck", request)."""
    items = [{kind: request} for kind, request in operations]
    try:
        aws.dynamodb().transact_write_items(TransactItems=items)
    except Exception as exc:
        if _is_condition_failure(exc):
            raise ConditionFailed(str(exc)) from exc
        raise
