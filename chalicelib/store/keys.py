"""API keys table: key `id` (the key's public id, the part of the key text before its secret);
GSI `by-user` (`user_id`, `created_at`) for a user's list.

An item: `id`, `user_id`, `username` (the owner's users-table key, so a request with the key
finds its user with one GetItem; chalicelib/apikeys.py repairs it after a rename), `name`,
`hash` (SHA-256 of the whole key text, hex), `created_at`, and `expires_at` / `last_used_at`
when set. The index projects what the list shows and never the hash.
"""
from __future__ import annotations

from typing import Callable

from .dynamo import ConditionFailed, Table

_table = Table("api_keys_table")
USER_INDEX = "by-user"


class DuplicateKeyId(Exception):
    """Another key already has this id (one chance in 2**64: draw again)."""


def get(key_id: str) -> dict | None:
    """One strongly consistent GetItem: a revoked key fails on the very next request."""
    return _table.get({"id": key_id})


def create(item: dict) -> None:
    try:
        _table.put(item, condition="attribute_not_exists(id)")
    except ConditionFailed:
        raise DuplicateKeyId(item["id"]) from None


def list_for_user(user_id: int) -> list[dict]:
    """A user's keys, oldest first: a Query of the user index (no Scan, no hash read)."""
    return list(_table.query("#u = :u", names={"#u": "user_id"}, values={":u": user_id}, index=USER_INDEX))


def delete(key_id: str, user_id: int | None = None) -> bool:
    """Delete the key (only if it belongs to `user_id`, when given); False when there was none."""
    return _table.delete_owned({"id": key_id}, user_id)


def touch(key_id: str, now: str, stale_before: str) -> bool:
    """Set `last_used_at` to `now` unless another request set it since `stale_before` (or the
    key is gone): the conditional write makes concurrent requests write it once."""
    try:
        _table.update({"id": key_id}, set={"last_used_at": now},
                      condition="attribute_exists(id) AND (attribute_not_exists(#l) OR #l < :stale)",
                      names={"#l": "last_used_at"}, values={":stale": stale_before})
    except ConditionFailed:
        return False
    return True


def set_username(key_id: str, user_id: int, username: str) -> None:
    """Record the owner's new username (after a rename); nothing if the key is gone."""
    try:
        _table.update({"id": key_id}, set={"username": username}, condition="#u = :u",
                      names={"#u": "user_id"}, values={":u": user_id})
    except ConditionFailed:
        pass


def delete_for_user(user_id: int, has_time: Callable[[], bool]) -> bool:
    """Forget every key of a deleted user while `has_time()`; True when none is left."""
    for item in list_for_user(user_id):
        if not has_time():
            return False
        delete(item["id"], user_id)
    return True
