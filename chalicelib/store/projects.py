"""Projects table: key `id`.

Two sparse GSIs list projects newest first: `by-owner` (attribute `list_owner`)
and `all-projects` (attribute `list_all`, for superusers). A project being
deleted loses both attributes, so it drops out of every listing at once while its
tasks are removed. `tasks` is a string set of the project's task ids, so a listing
is one Query whatever the number of projects or tasks; a project holds at most
MAX_TASKS_PER_PROJECT of them.
"""
from __future__ import annotations

from ..models import MAX_TASKS_PER_PROJECT
from . import counters
from .dynamo import ConditionFailed, Table

_table = Table("projects_table")
LISTED = "project"
_VISIBLE = "attribute_exists(id) AND attribute_not_exists(deleting)"


def create(owner_id: int, fields: dict, created_at: str) -> dict:
    item = {**fields, "id": counters.next_id("projects"), "owner": owner_id,
            "created_at": created_at, "list_owner": owner_id, "list_all": LISTED}
    _table.put(item, condition="attribute_not_exists(id)")
    return item


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


def set_owner(project_id: int, owner_id: int) -> None:
    _table.update({"id": project_id}, set={"owner": owner_id, "list_owner": owner_id},
                  condition=_VISIBLE)


def mark_deleting(project_id: int) -> dict | None:
    """Hide the project from the API; its tasks are removed before the row goes."""
    try:
        return _table.update({"id": project_id}, set={"deleting": True},
                             remove=("list_owner", "list_all"), condition=_VISIBLE)
    except ConditionFailed:
        return None


def delete_if_empty(project_id: int) -> bool:
    """Delete a project row once it holds no task; False while tasks remain."""
    try:
        _table.delete({"id": project_id}, condition="attribute_not_exists(tasks)")
        return True
    except ConditionFailed:
        return False


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
