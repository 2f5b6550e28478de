"""Users table: key `username` (what a JWT names); GSI `by-id` for the admin API."""
from __future__ import annotations

from . import counters
from .dynamo import ConditionFailed, Table, transact

_table = Table("users_table")


class DuplicateUsername(Exception):
    pass


def get(username: str) -> dict | None:
    return _table.get({"username": username})


def get_by_id(user_id: int) -> dict | None:
    for item in _table.query("#id = :id", names={"#id": "id"}, values={":id": user_id}, index="by-id"):
        return item
    return None


def list_all() -> list[dict]:
    """Admin listing only (users are few); never on a hot path."""
    return sorted(_table.scan(), key=lambda u: u["id"])


def create(record: dict) -> dict:
    item = {**record, "id": counters.next_id("users")}
    try:
        _table.put(item, condition="attribute_not_exists(username)")
    except ConditionFailed:
        raise DuplicateUsername(record["username"]) from None
    return item


def update(user: dict, changes: dict) -> dict:
    """Apply changes; a new username moves the item atomically (the key is the username)."""
    new = {**user, **changes}
    if new["username"] == user["username"]:
        _table.put(new, condition="#id = :id", names={"#id": "id"}, values={":id": user["id"]})
        return new
    try:
        transact(
            ("Put", _table.put_request(new, condition="attribute_not_exists(username)")),
            ("Delete", _table.delete_request({"username": user["username"]}, condition="#id = :id",
                                             names={"#id": "id"}, values={":id": user["id"]})),
        )
    except ConditionFailed:
        raise DuplicateUsername(new["username"]) from None
    return new


def delete(user: dict) -> None:
    _table.delete({"username": user["username"]})


def delete_request(user: dict) -> tuple[str, dict]:
    """Transaction part: delete this user's row (not another user who took the name since)."""
    return ("Delete", _table.delete_request({"username": user["username"]}, condition="#id = :id",
                                            names={"#id": "id"}, values={":id": user["id"]}))


def ensure(record: dict) -> bool:
    """Create the user unless that username exists (seeding); True when created."""
    if get(record["username"]) is not None:
        return False
    try:
        create(record)
    except DuplicateUsername:
        return False
    return True


def get_many(usernames: list[str]) -> list[dict]:
    """The users of these usernames that exist (one BatchGetItem per 100)."""
    return _table.batch_get([{"username": u} for u in usernames], consistent=True)


def join_group(user: dict, group_id: int) -> None:
    """Add a group id to the user's `groups` (a number set); nothing if the user is gone."""
    try:
        _table.update({"username": user["username"]}, add={"groups": {group_id}}, condition="#id = :id",
                      names={"#id": "id"}, values={":id": user["id"]})
    except ConditionFailed:
        pass


def leave_group(user: dict, group_id: int) -> None:
    """Take a group id out of the user's `groups`; nothing if the user is gone."""
    try:
        _table.update({"username": user["username"]}, delete={"groups": {group_id}}, condition="#id = :id",
                      names={"#id": "id"}, values={":id": user["id"]})
    except ConditionFailed:
        pass
