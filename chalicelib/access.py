"""Finding the project or task a request names, for a caller allowed to use it.

Shared by the task routes and the upload authorizer, so both refuse the same
things the same way: ids that do not parse, tasks of another project, tasks being
removed, and projects the caller may not use are all NotFound (WebODM's 404;
never a hint that the object exists). Who may do what lives in permissions.py.
"""
from __future__ import annotations

import re

from . import permissions
from .errors import NotFound
from .store import projects, tasks

MAX_ID = 2**53  # ids are counters; a larger number is no id (and no valid DynamoDB key lookup)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def int_id(value) -> int:
    """A path id; one that is not a positive integer is NotFound (`/api/projects/abc/`)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise NotFound() from None
    if number < 1 or number > MAX_ID:
        raise NotFound()
    return number


def task_id(value) -> str:
    """A task id is a UUID (WebODM's); anything else names no task."""
    if not isinstance(value, str) or not _UUID.match(value):
        raise NotFound()
    return value.lower()


def task_in(project: dict, raw_task_id) -> dict:
    """The task of this project (never one of another project, nor one being removed)."""
    task = tasks.get(project["id"], task_id(raw_task_id))
    if task is None or tasks.is_hidden(task):
        raise NotFound()
    return task


def task_for(user: dict, raw_project_id, raw_task_id, need: str = "change") -> tuple[dict, dict]:
    """(project, task) for a caller who holds `need` on the task's project."""
    project = permissions.project_for(user, int_id(raw_project_id), need)
    return project, task_in(project, raw_task_id)


def readable_task(user: dict | None, raw_project_id, raw_task_id) -> dict:
    """A task the caller may read: a project viewer's, or a public one (even anonymously)."""
    project = projects.get(int_id(raw_project_id))
    if project is None:
        raise NotFound()
    task = task_in(project, raw_task_id)
    if not permissions.can_read_task(user, project, task):
        raise NotFound()
    return task
