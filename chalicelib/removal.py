"""Removing tasks and projects: shared by the routes and the poller.

Removal is recorded first (`pending_action` REMOVE, which hides the task and makes
it active), then carried out: node remove (poller only), S3 objects, console
output, the row. Every step is idempotent, so a Lambda killed half way leaves a
task the poller finishes. A project delete hides the project at once; the row
goes when its last task has gone.
"""
from __future__ import annotations

import logging

from . import storage
from .models import PendingAction
from .store import output, projects, tasks
from .store.dynamo import ConditionFailed

log = logging.getLogger(__name__)


def request_removal(task: dict) -> dict | None:
    """Mark a task for removal; returns it as written (None if already gone)."""
    def change(current: dict):
        if current.get("pending_action") == PendingAction.REMOVE:
            return None
        return {"pending_action": int(PendingAction.REMOVE), "partial": False, "last_error": None}

    return tasks.mutate(task["project_id"], task["id"], change)


def can_finish_now(task: dict) -> bool:
    """Never sent to a node and no poller mid-step: nothing on a node to clean up."""
    return not task.get("uuid") and not tasks.is_leased(task)


def remove_task(task: dict, immediate: bool = True) -> None:
    marked = request_removal(task)
    if marked is not None and immediate and can_finish_now(marked):
        finish_removal(marked)


def finish_removal(task: dict) -> bool:
    """Delete objects, output and the row; False if the task changed meanwhile."""
    storage.delete_task_objects(task["id"])
    output.clear(task["id"])
    try:
        tasks.delete(task)
    except ConditionFailed:
        return False
    project = projects.get(task["project_id"], include_deleting=True)
    if project is not None and project.get("deleting") and not project.get("tasks"):
        projects.delete_if_empty(project["id"])
    return True


def remove_project_tasks(project: dict, has_time=lambda: True) -> None:
    """Remove every task of a hidden project, then the project if nothing is left.

    Tasks that can go at once go while `has_time()`; the rest are marked for the poller.
    """
    for task_id in sorted(project.get("tasks") or ()):
        task = tasks.get(project["id"], task_id)
        if task is not None:
            remove_task(task, immediate=has_time())
    projects.delete_if_empty(project["id"])
