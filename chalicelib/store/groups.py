"""Groups: GroupsTable, key `name` (unique, as Django's); GSIs `by-id` and `all-groups`
(attribute `list_all`, sorted by name: the listing, the search and X-Groups-Count).

Who is in a group is stored on each user (users' `groups`, a set of group ids), so the
caller's memberships come with the user row every request already reads. Shares name
groups by id (store/shares.py), so a rename moves only this row.
"""
from __future__ import annotations

from . import counters
from .dynamo import ConditionFailed, Table, transact

_table = Table("groups_table")
LISTED = "group"


class DuplicateName(Exception):
    pass


def get(name: str) -> dict | None:
    return _table.get({"name": name})


def get_by_id(group_id: int) -> dict | None:
    for item in _table.query("#id = :id", names={"#id": "id"}, values={":id": group_id}, index="by-id"):
        return item
    return None


def list_all() -> list[dict]:
    """Every group by name (one Query while they fit 1 MB: a group row is tens of bytes)."""
    return list(_table.query("#l = :l", names={"#l": "list_all"}, values={":l": LISTED}, index="all-groups"))


def count() -> int:
    return _table.count("#l = :l", names={"#l": "list_all"}, values={":l": LISTED}, index="all-groups")


def get_many(names: list[str]) -> list[dict]:
    return _table.batch_get([{"name": n} for n in names], consistent=True)


def create(name: str) -> dict:
    item = {"name": name, "id": counters.next_id("groups"), "list_all": LISTED}
    try:
        _table.put(item, condition="attribute_not_exists(#n)", names={"#n": "name"})
    except ConditionFailed:
        raise DuplicateName(name) from None
    return item


def rename(group: dict, name: str) -> dict:
    """The same group under a new name (the key), atomically; DuplicateName if it is taken."""
    if name == group["name"]:
        return group
    new = {**group, "name": name}
    try:
        transact(("Put", _table.put_request(new, condition="attribute_not_exists(#n)", names={"#n": "name"})),
                 delete_request(group))
    except ConditionFailed:
        raise DuplicateName(name) from None
    return new


def delete_request(group: dict) -> tuple[str, dict]:
    """Transaction part: delete this group's row (not another group that took the name since)."""
    return ("Delete", _table.delete_request({"name": group["name"]}, condition="#id = :id",
                                            names={"#id": "id"}, values={":id": group["id"]}))
