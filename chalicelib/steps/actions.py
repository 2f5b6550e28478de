"""What a user asked for: remove, cancel, restart (WebODM's pending actions)."""
from __future__ import annotations

import logging

from .. import removal
from ..models import StatusCode
from ..nodeodm import NodeError
from ..store import output
from .context import NODE_RESET, NOTHING, NOW, Outcome, StepContext, failed

log = logging.getLogger(__name__)
NO_NODE_FOR_RESTART = "Cannot restart a task that has no processing node"


def _on_node(ctx: StepContext, action: str) -> None:
    """Best effort, as WebODM: the node may be gone or have forgotten the task."""
    if ctx.task.get("uuid") and ctx.node() is not None:
        try:
            getattr(ctx.client(timeout=10.0), action)(ctx.task["uuid"])
        except NodeError as exc:
            log.info("%s on the node failed for task %s: %s", action, ctx.task["id"], exc)


def remove(ctx: StepContext) -> Outcome:
    _on_node(ctx, "remove")
    if not removal.finish_removal(ctx.task):
        return Outcome("remove", {}, NOW, note="changed meanwhile")
    return Outcome("remove", gone=True, note="removed")


def cancel(ctx: StepContext) -> Outcome:
    _on_node(ctx, "cancel")
    return Outcome("cancel", {"status": int(StatusCode.CANCELED), "pending_action": None}, NOTHING,
                   note="canceled")


def restart(ctx: StepContext) -> Outcome:
    task = ctx.task
    node = ctx.node()
    if node is None and not task.get("auto_processing_node"):
        return failed("restart", NO_NODE_FOR_RESTART)
    changes: dict = {}
    restarted_on_node = False
    if task.get("uuid") and node is not None and task.get("node_committed"):
        client = ctx.client()
        try:
            info = client.task_info(task["uuid"])
            if info.uuid in ("", task["uuid"]):
                client.restart(task["uuid"], task.get("options") or [])
                restarted_on_node = True
        except NodeError as exc:
            log.info("Restart on the node failed for task %s, sending images again: %s", task["id"], exc)
    if not restarted_on_node:
        options = [o for o in (task.get("options") or []) if o.get("name") != "rerun-from"]
        changes.update({**NODE_RESET, "processing_node": task.get("processing_node"), "options": options})
    changes["node_completed"] = None
    output.clear(task["id"])
    changes.update({"status": None, "last_error": None, "pending_action": None, "processing_time": -1,
                    "running_progress": 0.0, **output.reset_fields()})
    return Outcome("restart", changes, NOW, note="on the node" if restarted_on_node else "images sent again")


def drop(ctx: StepContext) -> Outcome:
    """Actions Aloft does not carry out (compact) are forgotten."""
    return Outcome("drop-action", {"pending_action": None}, NOW, quiet=True)
