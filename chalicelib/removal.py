"""Removing tasks and projects, and handing a deleted user's projects over: shared by
the routes and the poller.

Removal is recorded first (`pending_action` REMOVE, which hides the task and makes
it active), then carried out: node remove (poller only), S3 objects, console
output, the row. Every step is idempotent, so a Lambda killed half way leaves a
task the poller finishes.

Work that grows with user data never runs to its end inside an API route (29 s on
AWS): a project delete hides the project and records a job (store/work.py) in one
transaction, removes what it can within ROUTE_WORK_SECONDS, and the poller carries
the job on; the row and the job go together once the last task has gone. Deleting a
user works the same way for the handover of their projects, deleting a group for its
memberships. The shares of a deleted project, user or group go with it (store/shares.py), and a
deleted user's API keys (store/keys.py) and webhooks (store/webhooks.py).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from . import queue, storage, webhooks
from .models import PendingAction
from .store import groups, keys, output, projects, shares, tasks, users, work
from .store import webhooks as webhook_store
from .store.dynamo import ConditionFailed, transact

log = logging.getLogger(__name__)

# What a route spends on such work before it answers; the poller does the rest.
ROUTE_WORK_SECONDS = 2.0
# A route never starts more work with less than this left of its Lambda's time.
ROUTE_RESERVE_MILLIS = 5000

HasTime = Callable[[], bool]


def route_budget(context) -> HasTime:
    """`has_time` for work inside a route: ROUTE_WORK_SECONDS from now, and never into the
    last ROUTE_RESERVE_MILLIS of the Lambda invocation."""
    deadline = time.monotonic() + ROUTE_WORK_SECONDS
    return lambda: time.monotonic() < deadline and (
        context is None or context.get_remaining_time_in_millis() > ROUTE_RESERVE_MILLIS)


# ---------------------------------------------------------------------------- tasks

def request_removal(task: dict) -> dict | None:
    """Mark a task for removal; returns it as written, or as read if it was marked
    already (None if it is gone)."""
    def change(current: dict):
        if current.get("pending_action") == PendingAction.REMOVE:
            return None
        return {"pending_action": int(PendingAction.REMOVE), "partial": False, "last_error": None,
                **queue.wake_fields()}

    return tasks.mutate(task["project_id"], task["id"], change)


def can_finish_now(task: dict) -> bool:
    """Never sent to a node and no poller mid-step: nothing on a node to clean up."""
    return not task.get("uuid") and not tasks.is_leased(task)


def remove_task(task: dict, immediate: bool = True) -> None:
    """Mark the task; finish at once what no node holds, else its worker does (a message)."""
    marked = request_removal(task)
    if marked is None:
        return
    if immediate and can_finish_now(marked):
        finish_removal(marked)
    else:
        queue.send(marked)


def finish_removal(task: dict, check_project: bool = True, hooks: list[dict] | None = None) -> bool:
    """Delete objects, output and the row; False if the task changed meanwhile. The last
    task of a project being deleted takes the project (and its job) with it. `hooks`: the
    project's webhooks, looked up once by a caller that removes many of its tasks."""
    storage.delete_task_objects(task["id"])
    output.clear(task["id"])
    events = webhooks.for_change(task, None, hooks)  # `task.removed`, written with the delete
    try:
        tasks.delete(task, extra=events.ops)
    except ConditionFailed:
        return False
    events.send()
    if check_project:
        project = projects.get(task["project_id"], include_deleting=True)
        if project is not None and project.get("deleting") and not project.get("tasks"):
            shares.remove_project(project["id"])
            projects.delete_if_empty(project["id"])
    return True


# ---------------------------------------------------------------------------- projects

def delete_project(project: dict, context) -> None:
    """The DELETE route's part: hide the project and record its job at once, then remove
    what fits in the route's budget; the poller carries the job on."""
    if projects.mark_deleting(project["id"]):
        remove_project(project["id"], route_budget(context))


def remove_project(project_id: int, has_time: HasTime) -> bool:
    """Carry on removing a project being deleted: each task while `has_time()`, then the
    row and its job. True when the project is gone.

    A task on a node (or mid-step in a poller) is only marked: the poller's step for it
    removes it from the node and finishes it, and a later pass removes the project.
    """
    project = projects.get(project_id, include_deleting=True)
    if project is None or not project.get("deleting"):
        work.delete(work.remove_project_id(project_id))  # gone already (or never hidden)
        return True
    hooks = None  # looked up once per pass, at the first task removed here
    for task_id in sorted(project.get("tasks") or ()):
        if not has_time():
            return False
        marked = request_removal({"project_id": project_id, "id": task_id})
        if marked is None:
            projects.forget_task(project_id, task_id)
        elif can_finish_now(marked):
            if hooks is None:
                hooks = webhooks.project_hooks(project_id)
            finish_removal(marked, check_project=False, hooks=hooks)
        else:
            queue.send(marked)  # on a node: its worker removes it there (a repeat is harmless)
    if not shares.remove_project(project_id, has_time):
        return False
    return projects.delete_if_empty(project_id)


# ---------------------------------------------------------------------------- users

def delete_user(user: dict, successor: dict, context) -> None:
    """The DELETE route's part: the user row goes and a hand-over job is recorded in one
    transaction (their tokens stop working at once), then their projects pass to
    `successor` within the route's budget. The poller finishes the hand-over and closes
    the job after one more look (the owner index is eventually consistent)."""
    transact(users.delete_request(user), work.hand_over_request(user["id"], successor["id"]))
    hand_over(user["id"], successor["id"], route_budget(context))


def hand_over(from_user: int, to_user: int, has_time: HasTime) -> bool:
    """Give every visible project of `from_user` to `to_user`, and forget what was shared
    with `from_user`, their API keys (which stopped working with the user row) and their
    webhooks; True when nothing was left."""
    if not keys.delete_for_user(from_user, has_time):
        return False
    if not webhook_store.delete_for_user(from_user, has_time):
        return False
    for project_id in projects.ids_for_owner(from_user):
        if not has_time():
            return False
        projects.set_owner(project_id, to_user)  # False: being deleted, nothing to hand over
    return shares.remove_grantee(shares.user_grantee(from_user), has_time)


# ---------------------------------------------------------------------------- groups

def delete_group(group: dict, context) -> None:
    """The DELETE route's part: the group row goes and a remove-group job is recorded in one
    transaction, then its shares (what grants anything) and its memberships are removed
    within the route's budget; the poller finishes what is left within a minute."""
    transact(groups.delete_request(group), work.remove_group_request(group["id"]))
    remove_group(group["id"], route_budget(context))


def remove_group(group_id: int, has_time: HasTime) -> bool:
    """Forget the group's shares, then take it out of every member's `groups`; True when done."""
    if not shares.remove_grantee(shares.group_grantee(group_id), has_time):
        return False
    for user in users.list_all():
        if group_id in (user.get("groups") or ()):
            if not has_time():
                return False
            users.leave_group(user, group_id)
    return True


# ---------------------------------------------------------------------------- the poller's part

def run_job(job: dict, has_time: HasTime) -> bool:
    """Carry a job on while `has_time()`; True when it is done (and forgotten)."""
    kind = job.get("kind")
    if kind == work.REMOVE_PROJECT:
        return remove_project(int(job["project_id"]), has_time)
    if kind == work.HAND_OVER:
        if not hand_over(int(job["from_user"]), int(job["to_user"]), has_time):
            return False
        work.delete(job["job"])
        return True
    if kind == work.REMOVE_GROUP:
        if not remove_group(int(job["group_id"]), has_time):
            return False
        work.delete(job["job"])
        return True
    log.warning("Unknown job %s: forgotten", job.get("job"))
    work.delete(job["job"])
    return True
