"""What a step works with: the task under its lease, its deadline, and the one way to write.

Every write is conditional on the task's version and on still holding the lease, so
two workers, a killed Lambda or a user's action never make a step write over what it
did not see. A step never writes the task's `step_token`: the machine's final write
does, once, with the follow-up the step asked for.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import nodes as node_service
from .. import queue, webhooks
from ..store import nodes as node_store
from ..store import tasks
from ..store.dynamo import ConditionFailed

# A task sent elsewhere, or to no node at all, forgets everything of its node: one place.
NODE_RESET = {"processing_node": None, "uuid": "", "node_committed": False, "node_completed": None,
              "upload_progress": 0.0, "upload_resume_from": None}


class Abort(Exception):
    """Stop the step without writing more: the lease or the task is gone, or a user's action
    came first (its own message carries it out)."""


@dataclass(frozen=True)
class Follow:
    """When the task needs its next step: `delay` seconds from now, or never (None: the task
    waits for a person, or is done)."""
    delay: float | None

    @property
    def wanted(self) -> bool:
        return self.delay is not None


NOTHING = Follow(None)
NOW = Follow(0.0)


def after(seconds: float) -> Follow:
    return Follow(float(seconds))


@dataclass
class Outcome:
    """What a step did: the fields it observed or decided, any transaction parts (console
    lines), when the task needs its next step, and a word for the log."""
    step: str
    changes: dict = field(default_factory=dict)
    follow: Follow = NOTHING
    ops: tuple = ()
    note: str = ""
    quiet: bool = False      # nothing worth a log line (a poll that saw no news)
    gone: bool = False       # the task no longer exists (removed)


class StepContext:
    def __init__(self, task: dict, owner: str, deadline: float, token: str):
        self.task = task
        self.owner = owner
        self.deadline = deadline
        self.token = token
        self.released = False
        self.submitting = False  # mid-upload: a user's action stops the upload at once
        self.chain_kept = True   # False once a user's action gave the task a new token
        self._node: tuple[int | None, dict | None] | None = None

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    # -- the node -------------------------------------------------------------------------
    def node(self) -> dict | None:
        """The task's node as stored (refreshed by the schedule, on registration and after a
        node error); None when the task has none or the node was deleted."""
        node_id = self.task.get("processing_node")
        if self._node is None or self._node[0] != node_id:
            self._node = (node_id, node_store.get(node_id) if node_id is not None else None)
        return self._node[1]

    def client(self, timeout: float = 30.0):
        return node_service.client_for(self.node(), timeout)

    def node_unreachable(self) -> None:
        """After a connection error: ask the node again, so its stored state ages out (and
        the next steps hand the task elsewhere) if it really is gone."""
        node = self.node()
        if node is not None:
            self._node = (node["id"], node_service.refresh(node))

    def stop_if_user_acted(self) -> None:
        """Abort when a cancel, remove or restart arrived since the lease was taken (read
        before an irreversible call, e.g. the node's commit)."""
        fresh = tasks.get(self.task["project_id"], self.task["id"])
        if fresh is None or fresh.get("pending_action") != self.task.get("pending_action"):
            raise Abort()

    # -- writing --------------------------------------------------------------------------
    def save(self, changes: dict, ops: tuple = (), *, final: bool = False, follow: Follow = NOTHING) -> dict:
        """Write `changes` (and `ops` in the same transaction). The final write releases the
        lease and sets the task's next token (a new one when `follow` is wanted, none
        otherwise), unless a user's action set its own meanwhile.

        On a version conflict (the API changed the task), the same observation is applied
        to the fresh item; a step whose decision a new pending action overrides stops."""
        for _ in range(5):
            write = dict(changes)
            remove: tuple[str, ...] = ()
            if final and self.chain_kept:
                if follow.wanted:
                    write.update(queue.wake_fields(follow.delay or 0.0))
                else:
                    remove = queue.CLEAR_FIELDS
            update, new = tasks.update_request(self.task, write, lease_owner=self.owner, release_lease=final,
                                               remove_fields=remove)
            try:
                webhooks.write_change(update, self.task, new, ops)  # with its events, or not at all
            except ConditionFailed:
                self._conflict(changes, ops)
                continue
            self.task = new
            self.released = final
            return new
        raise Abort()

    def _conflict(self, changes: dict, ops: tuple) -> None:
        fresh = tasks.get(self.task["project_id"], self.task["id"])
        if fresh is None or fresh.get("lease_owner") != self.owner:
            raise Abort()
        if ops:
            raise Abort()  # console lines are fetched again by the next step
        if "pending_action" in changes and fresh.get("pending_action") != self.task.get("pending_action"):
            raise Abort()
        if self.submitting and "uuid" not in changes and fresh.get("pending_action") is not None:
            # Cancel, remove or restart arrived mid-upload: stop now (the node's uuid is
            # saved; an uncommitted upload is discarded by the node) and let it run next.
            raise Abort()
        if fresh.get("step_token") != self.task.get("step_token"):
            self.chain_kept = False  # the API started a new chain: its message goes on from here
        self.task = fresh


def failed(step: str, message: str) -> Outcome:
    from ..models import StatusCode

    return Outcome(step, {"status": int(StatusCode.FAILED), "last_error": message[:4000], "pending_action": None},
                   NOTHING, note=f"failed: {message[:200]}")
