"""Tasks table: key (`project_id`, `id`), `id` a UUID string as in WebODM.

Every write is conditional on `version` (optimistic locking) and re-derives the
sparse index keys: `active` (the `active-tasks` GSI: only tasks a worker must
look at carry it, so the schedule's cost follows active tasks, never all tasks ever
created) and `uploading` (the `partial-tasks` GSI: partial tasks by age, for expiry). The poller additionally holds a lease (`lease_owner`,
`lease_until`) on a task for the length of one step.
"""
from __future__ import annotations

import time
from typing import Callable

from ..models import PendingAction
from .dynamo import ConditionFailed, Table, transact
from . import projects

_table = Table("tasks_table")
ACTIVE_INDEX = "active-tasks"
ACTIVE = "1"
PARTIAL_INDEX = "partial-tasks"
POLLER_IDLE_STATUSES = (None, 10, 20)


def needs_poller(task: dict) -> bool:
    """WebODM's get_pending_tasks(): what the poller must visit (partial tasks never),
    plus committed tasks whose uploaded bodies are not all ingested yet."""
    if task.get("partial"):
        return False
    if task.get("copying") and task.get("pending_action") != PendingAction.REMOVE:
        return False  # a duplicate whose files are still being copied (chalicelib/duplicate.py)
    if task.get("pending_action") is not None or task.get("ingest_pending"):
        return True
    return task.get("status") in POLLER_IDLE_STATUSES and (
        task.get("processing_node") is not None or bool(task.get("auto_processing_node")))


def is_hidden(task: dict) -> bool:
    """A task being removed has already left the API."""
    return task.get("pending_action") == PendingAction.REMOVE


def key(task: dict) -> dict:
    return {"project_id": task["project_id"], "id": task["id"]}


def _index_keys(item: dict) -> dict:
    """The sparse GSI keys `item` must carry."""
    keys = {}
    if needs_poller(item):
        keys["active"] = ACTIVE
    if item.get("partial"):
        keys["uploading"] = ACTIVE
    return keys


_INDEX_KEYS = ("active", "uploading")


def _with_active(item: dict) -> dict:
    return {**{k: v for k, v in item.items() if k not in _INDEX_KEYS}, **_index_keys(item)}


def create_request(item: dict) -> tuple[str, dict]:
    """The transaction part that creates a task (version 1)."""
    return ("Put", _table.put_request(_with_active({**item, "version": 1}),
                                      condition="attribute_not_exists(id)"))


def get(project_id: int, task_id: str) -> dict | None:
    return _table.get({"project_id": project_id, "id": task_id})


def list_for_project(project_id: int) -> list[dict]:
    return list(_table.query("#p = :p", names={"#p": "project_id"}, values={":p": project_id},
                             consistent=True))


def partial_created_before(created_at: str, limit: int = 100) -> list[dict]:
    """Partial tasks created before `created_at` (ISO text), oldest first: only expired ones
    are read, however many partial tasks exist."""
    return list(_table.query("#u = :u AND #c < :c", names={"#u": "uploading", "#c": "created_at"},
                             values={":u": ACTIVE, ":c": created_at}, index=PARTIAL_INDEX, limit=limit))


def list_active() -> list[dict]:
    """Tasks the poller must visit, oldest first (one Query per 1 MB page)."""
    return list(_table.query("#a = :a", names={"#a": "active"}, values={":a": ACTIVE},
                             index=ACTIVE_INDEX))


def update_request(task: dict, changes: dict, lease_owner: str | None = None,
                   release_lease: bool = False, remove_fields: tuple[str, ...] = ()
                   ) -> tuple[tuple[str, dict], dict]:
    """The conditional update for `changes` (and `remove_fields` dropped) on top of `task`
    as read, and the new item."""
    new = _with_active({**{k: v for k, v in task.items() if k not in remove_fields}, **changes,
                        "version": task["version"] + 1})
    set_ = {k: v for k, v in changes.items() if k not in (*_INDEX_KEYS, "version")}
    set_["version"] = new["version"]
    remove = [f for f in remove_fields if f not in changes and f in task]
    for index_key in _INDEX_KEYS:  # removed even when `task` as the caller holds it lacks it
        if index_key in new:
            set_[index_key] = new[index_key]
        elif index_key not in remove:
            remove.append(index_key)
    if release_lease:
        remove += ["lease_owner", "lease_until"]
        new.pop("lease_owner", None)
        new.pop("lease_until", None)
    condition = "#ver = :ver"
    values = {":ver": task["version"]}
    if lease_owner is not None:
        condition += " AND #lo = :lo"
        values[":lo"] = lease_owner
    request = _table.update_request(key(task), set=set_, remove=remove, condition=condition,
                                    names={"#ver": "version", "#lo": "lease_owner"} if lease_owner
                                    else {"#ver": "version"}, values=values)
    return ("Update", request), new


def update(task: dict, changes: dict, lease_owner: str | None = None,
           release_lease: bool = False, remove_fields: tuple[str, ...] = ()) -> dict:
    """Write `changes` if nobody changed the task since it was read; returns the new item."""
    operation, new = update_request(task, changes, lease_owner, release_lease, remove_fields)
    write(operation)
    return new


def write(operation: tuple[str, dict]) -> None:
    """Perform one prepared ("Update", request) outside a transaction."""
    Table._write(Table._client().update_item, operation[1])


def mutate(project_id: int, task_id: str, change: Callable[[dict], dict | None],
           attempts: int = 8, writer: Callable[[tuple, dict, dict], None] | None = None) -> dict | None:
    """Read-modify-write with retries on version conflicts.

    `change(task)` returns the changes to apply (or None to leave the task alone).
    `writer(update, task, new)` performs the prepared update when the caller writes more
    with it (webhooks.write_change: the events of the change); by default, the update alone.
    Returns the task as written (or as read when unchanged); None if it is gone.
    """
    for _ in range(attempts):
        task = get(project_id, task_id)
        if task is None:
            return None
        changes = change(task)
        if not changes:
            return task
        operation, new = update_request(task, changes)
        try:
            (writer or (lambda op, _before, _after: write(op)))(operation, task, new)
            return new
        except ConditionFailed:
            time.sleep(0.01)
    raise ConditionFailed(f"task {task_id} kept changing")


def acquire_lease(task: dict, owner: str, seconds: float) -> dict | None:
    """Take the task for one step; None if another poller holds a live lease (or it is gone)."""
    now = time.time()
    try:
        return _table.update(key(task), set={"lease_owner": owner, "lease_until": now + seconds},
                             condition="attribute_exists(id) AND (attribute_not_exists(#lu) OR #lu < :now)",
                             names={"#lu": "lease_until"}, values={":now": now})
    except ConditionFailed:
        return None


def take_for_step(task_key: dict, owner: str, seconds: float, token: str) -> tuple[dict | None, str]:
    """Lease the task for the step that message `token` names, in one conditional write:
    (the task, "ok"), or (None, why): "gone", "stale" (the task waits for another token:
    this message is a duplicate or was replaced), "busy" (another worker holds it)."""
    now = time.time()
    try:
        item = _table.update(task_key, set={"lease_owner": owner, "lease_until": now + seconds},
                             condition="attribute_exists(id) AND #tok = :tok "
                                       "AND (attribute_not_exists(#lu) OR #lu < :now)",
                             names={"#lu": "lease_until", "#tok": "step_token"},
                             values={":now": now, ":tok": token})
        return item, "ok"
    except ConditionFailed:
        current = get(task_key["project_id"], task_key["id"])
        if current is None:
            return None, "gone"
        if current.get("step_token") != token:
            return None, "stale"
        return None, "busy"


def release_lease(task: dict, owner: str) -> None:
    try:
        _table.update(key(task), remove=("lease_owner", "lease_until"),
                      condition="#lo = :lo", names={"#lo": "lease_owner"}, values={":lo": owner})
    except ConditionFailed:
        pass


def is_leased(task: dict) -> bool:
    return bool(task.get("lease_until")) and task["lease_until"] > time.time()


def delete(task: dict, condition_version: bool = True, extra: tuple = ()) -> None:
    """Delete the row (only if unchanged since read) and forget it in its project (and write
    `extra` transaction parts with it: the webhook messages of its removal)."""
    condition = "#ver = :ver" if condition_version else "attribute_exists(id)"
    values = {":ver": task["version"]} if condition_version else None
    names = {"#ver": "version"} if condition_version else None
    transact(
        ("Delete", _table.delete_request(key(task), condition=condition, names=names, values=values)),
        ("Update", projects.remove_task_request(task["project_id"], task["id"])),
        *extra,
    )


def move(task: dict, target_project_id: int) -> dict:
    """Move a task to another project atomically (row key, both projects' task sets)."""
    moved = _with_active({**task, "project_id": target_project_id, "version": task["version"] + 1})
    transact(
        ("Delete", _table.delete_request(key(task), condition="#ver = :ver",
                                         names={"#ver": "version"}, values={":ver": task["version"]})),
        ("Put", _table.put_request(moved, condition="attribute_not_exists(id)")),
        ("Update", projects.remove_task_request(task["project_id"], task["id"])),
        ("Update", projects.add_task_request(target_project_id, task["id"])),
    )
    return moved


def renew_lease(task_key: dict, owner: str, seconds: float) -> bool:
    """Extend our lease during a long step; False once it is no longer ours."""
    try:
        _table.update(task_key, set={"lease_until": time.time() + seconds},
                      condition="#lo = :lo", names={"#lo": "lease_owner"}, values={":lo": owner})
        return True
    except ConditionFailed:
        return False
