"""Projects table: key `id`.

Two sparse GSIs list projects newest first: `by-owner` (attribute `list_owner`)
and `all-projects` (attribute `list_all`, for superusers). A project being
deleted loses both attributes, so it drops out of every listing at once, and a
`remove-project` job (store/work.py) is recorded with it: the route and then the
poller remove its tasks, and the row and the job go together when none is left.
`tasks` is a string set of the project's task ids, so a listing is one Query
whatever the number of projects or tasks; a project holds at most
MAX_TASKS_PER_PROJECT of them.
"""
from __future__ import annotations

from typing import Iterator

from ..models import MAX_TASKS_PER_PROJECT
from . import counters, work
from .dynamo import ConditionFailed, Table, transact

_table = Table("projects_table")
LISTED = "project"
_VISIBLE = "attribute_exists(id) AND attribute_not_exists(deleting)"
_EMPTY_AND_DELETING = "attribute_not_exists(tasks) AND attribute_exists(deleting)"


def create(owner_id: int, fields: dict, created_at: str) -> dict:
    item = {**fields, "id": counters.next_id("projects"), "owner": owner_id,
            "created_at": created_at, "list_owner": owner_id, "list_all": LISTED}
    _table.put(item, condition="attribute_not_exists(id)")
    return item


def create_request(owner_id: int, fields: dict, created_at: str, task_ids: list[str] | None = None
                   ) -> tuple[dict, tuple[str, dict]]:
    """A new project (holding these task ids already: a duplicate's, whose rows follow) and the
    transaction part that creates it."""
    item = {**fields, "id": counters.next_id("projects"), "owner": owner_id,
            "created_at": created_at, "list_owner": owner_id, "list_all": LISTED}
    if task_ids:
        item["tasks"] = set(task_ids)
    return item, ("Put", _table.put_request(item, condition="attribute_not_exists(id)"))


def get(project_id: int, include_deleting: bool = False) -> dict | None:
    item = _table.get({"id": project_id})
    if item is None or (item.get("deleting") and not include_deleting):
        return None
    return item


def list_for_owner(owner_id: int) -> list[dict]:
    return list(_table.query("#o = :o", names={"#o": "list_owner"}, values={":o": owner_id},
                             index="by-owner", forward=False))


def list_all() -> list[dict]:
    return list(_table.query("#l = :l", names={"#l": "list_all"}, values={":l": LISTED},
                             index="all-projects", forward=False))


def update(project_id: int, changes: dict, remove: tuple[str, ...] = ()) -> dict | None:
    """Update a visible project; None if it vanished meanwhile."""
    try:
        return _table.update({"id": project_id}, set=changes, remove=remove, condition=_VISIBLE)
    except ConditionFailed:
        return None


def set_owner(project_id: int, owner_id: int) -> bool:
    """Give a visible project to another owner; False if it is not visible (being deleted)."""
    try:
        _table.update({"id": project_id}, set={"owner": owner_id, "list_owner": owner_id},
                      condition=_VISIBLE)
        return True
    except ConditionFailed:
        return False


def mark_deleting(project_id: int) -> bool:
    """Hide the project from the API and record the job that removes its tasks, then the row
    (one transaction); False if it was not visible."""
    try:
        transact(("Update", _table.update_request({"id": project_id}, set={"deleting": True},
                                                  remove=("list_owner", "list_all"), condition=_VISIBLE)),
                 work.remove_project_request(project_id))
        return True
    except ConditionFailed:
        return False


def delete_if_empty(project_id: int) -> bool:
    """Delete a project being deleted, and its job, once it holds no task; False while tasks
    remain (or if it is not being deleted)."""
    try:
        transact(("Delete", _table.delete_request({"id": project_id}, condition=_EMPTY_AND_DELETING)),
                 work.delete_request(work.remove_project_id(project_id)))
        return True
    except ConditionFailed:
        return False


def forget_task(project_id: int, task_id: str) -> None:
    """Drop a task id whose row is gone (rows and ids change together; an older row may not)."""
    _table.update({"id": project_id}, delete={"tasks": {task_id}}, condition="attribute_exists(id)")


def ids_for_owner(owner_id: int) -> Iterator[int]:
    """The ids of an owner's visible projects, lazily (one Query page at a time)."""
    for item in _table.query("#o = :o", names={"#o": "list_owner", "#i": "id"}, values={":o": owner_id},
                             index="by-owner", projection="#i"):
        yield item["id"]


def add_task_request(project_id: int, task_id: str) -> dict:
    """Transaction part: record a new task id in a visible project that is not full."""
    return _table.update_request({"id": project_id}, add={"tasks": {task_id}},
                                 condition=f"{_VISIBLE} AND (attribute_not_exists(#t) OR size(#t) < :max)",
                                 names={"#t": "tasks"}, values={":max": MAX_TASKS_PER_PROJECT})


def is_full(project: dict | None) -> bool:
    return project is not None and len(project.get("tasks") or ()) >= MAX_TASKS_PER_PROJECT


def remove_task_request(project_id: int, task_id: str) -> dict:
    """Transaction part: forget a task id (the project may be in the middle of deletion)."""
    return _table.update_request({"id": project_id}, delete={"tasks": {task_id}},
                                 condition="attribute_exists(id)")


def get_many(project_ids: list[int]) -> list[dict]:
    """The visible projects among these ids, in no particular order (one BatchGetItem per 100)."""
    return [p for p in _table.batch_get([{"id": i} for i in project_ids]) if not p.get("deleting")]


def update_request(project_id: int, changes: dict) -> dict:
    """Transaction part: change fields of a visible project."""
    return _table.update_request({"id": project_id}, set=changes, condition=_VISIBLE)


def visible_check_request(project_id: int) -> dict:
    """Transaction part: the project is (still) visible."""
    return {"TableName": _table.name, "Key": {"id": {"N": str(project_id)}}, "ConditionExpression": _VISIBLE}
