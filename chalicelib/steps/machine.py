"""The task state machine and `advance_task`, its one entry point.

A message names a task and a token. `advance_task` leases the task for that token in
one conditional write, then runs steps while each asks for the next one at once and
time is left, and ends with one write: what the last step saw, the lease released,
and the token of the follow-up, which it then sends. The SQS `worker` calls it for
each message; nothing else advances a task.

Which step a task needs, at a glance (`choose`):

    pending action REMOVE / CANCEL / RESTART             remove / cancel / restart
    pending action IMPORT                                import (zip, backup, assets, 40)
    upload bodies still to ingest                        ingest
    pending action RESIZE / other                        resize / drop
    finished (not null/10/20)                            settle (leaves the active set)
    no node, automatic assignment                        assign
    node deleted                                         forget-node
    automatic node offline                               node-offline
    not committed on its node                            submit (init, relay, commit)
    node said COMPLETED                                  complete (all.zip, assets, 40)
    on its node                                          poll (status, console)
"""
from __future__ import annotations

import logging
import threading
import time
import uuid as uuid_lib
from typing import Callable

from .. import backup, duplicate, exports, queue, webhooks
from .. import nodes as node_service
from ..config import settings
from ..models import PendingAction
from ..store import tasks
from . import actions, follow, imports, resize, submit
from .context import NOTHING, NOW, Abort, Outcome, StepContext

log = logging.getLogger("aloft.steps")
SAFETY_MARGIN_SECONDS = 15.0
MAX_STEPS_PER_MESSAGE = 20
BUSY_RETRY_SECONDS = 2

Step = Callable[[StepContext], Outcome]


def settle(ctx: StepContext) -> Outcome:
    """A finished task: the write drops it from the active set."""
    return Outcome("settle", {}, NOTHING, quiet=True)


def wait(ctx: StepContext) -> Outcome:
    """No node and no automatic assignment: a person must choose one."""
    return Outcome("wait", {}, NOTHING, quiet=True)


def choose(ctx: StepContext) -> Step:
    task = ctx.task
    action = task.get("pending_action")
    if action == PendingAction.REMOVE:
        return actions.remove
    if action == PendingAction.CANCEL:
        return actions.cancel
    if action == PendingAction.RESTART:
        return actions.restart
    if action == PendingAction.IMPORT:
        return imports.import_task
    if task.get("ingest_pending"):
        return submit.ingest_uploads
    if action == PendingAction.RESIZE:
        return resize.resize
    if action is not None:
        return actions.drop
    if task.get("status") not in tasks.POLLER_IDLE_STATUSES:
        return settle
    if task.get("processing_node") is None:
        return submit.assign if task.get("auto_processing_node") else wait
    node = ctx.node()
    if node is None:
        return submit.forget_node
    if task.get("auto_processing_node") and not node_service.is_online(node):
        return submit.node_offline
    if not task.get("node_committed"):
        return submit.submit
    if task.get("node_completed"):
        return follow.complete
    return follow.poll


def advance_task(task_key: dict, token: str, context=None) -> str:
    """Advance the task `token` names by the steps it needs now; a word for the caller's log:
    the last step's name, or "stale" (a duplicate or replaced message), "busy" (another
    worker holds it), "gone", "aborted"."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 60.0
    deadline = time.monotonic() + max(1.0, remaining - SAFETY_MARGIN_SECONDS)
    owner = uuid_lib.uuid4().hex
    task, why = tasks.take_for_step(task_key, owner, settings().lease_seconds, token)
    if task is None:
        return why
    ctx = StepContext(task, owner, deadline, token)
    renewer = _LeaseRenewer(tasks.key(task), owner)
    try:
        return _run(ctx)
    except Abort:
        return "aborted"  # the release below is conditional: harmless if no longer ours
    finally:
        renewer.stop()
        if not ctx.released:
            tasks.release_lease(ctx.task, owner)


def _run(ctx: StepContext) -> str:
    for _ in range(MAX_STEPS_PER_MESSAGE):
        started = time.monotonic()
        outcome = choose(ctx)(ctx)
        _log(ctx, outcome, time.monotonic() - started)
        if outcome.gone:
            ctx.released = True
            return outcome.step
        if outcome.follow is NOW and ctx.seconds_left() > 0:
            ctx.save(outcome.changes, outcome.ops)  # keep the lease: the next step runs now
            continue
        written = ctx.save(outcome.changes, outcome.ops, final=True, follow=outcome.follow)
        if ctx.chain_kept and outcome.follow.wanted:
            queue.send(written, outcome.follow.delay or 0.0)
        return outcome.step
    written = ctx.save({}, final=True, follow=NOW)
    queue.send(written)
    return "continued"


def _log(ctx: StepContext, outcome: Outcome, seconds: float) -> None:
    if outcome.quiet:
        return
    log.info("task %s %s: %s (%.0f ms)", ctx.task["id"], outcome.step, outcome.note or "done", seconds * 1000,
             extra={"fact": {"task": ctx.task["id"], "step": outcome.step, "outcome": outcome.note,
                             "ms": round(seconds * 1000)}})


def handle_message(body: str, context=None) -> str:
    """One SQS message: parse it, advance its task. A task another worker holds gets the same
    message again in a moment (the holder may be a killed Lambda whose lease runs out)."""
    message = queue.parse(body)  # a poisoned message raises: SQS retries it, then the DLQ
    if isinstance(message, queue.JobMessage):
        if message.kind == "duplicate":
            result = duplicate.run_job(message.job, context)
        elif message.kind == "webhook":
            result = webhooks.run_job(message.job, context)
        else:  # an export (WebODM's Celery task) or a backup, which chalicelib/backup.py makes
            result = exports.run_job(message.job, context, builders={exports.BACKUP: backup.build_for_job})
        log.info("%s job %s: %s", message.kind, message.job, result,
                 extra={"fact": {"job": message.job, "kind": message.kind, "outcome": result}})
        return result
    result = advance_task(message.task_key, message.token, context)
    if result == "busy":
        queue.send({"project_id": message.project_id, "id": message.task_id, "step_token": message.token},
                   BUSY_RETRY_SECONDS)
    return result


def handle_record(record: dict, context=None) -> str:
    """One record of an SQS event. A failure propagates, so SQS delivers the message again
    after its visibility timeout, and moves it to the dead-letter queue after the queue's
    maxReceiveCount: logged here on each failed receive, with the count."""
    try:
        return handle_message(record.get("body") or "", context)
    except Exception:
        receives = (record.get("attributes") or {}).get("ApproximateReceiveCount", "?")
        log.exception("work message %s failed (receive %s; the dead-letter queue takes it after the "
                      "queue's maxReceiveCount)", record.get("messageId", "?"), receives)
        raise


class _LeaseRenewer:
    """Keeps a long step's lease alive (a large upload or all.zip copy outlasts one lease)."""

    def __init__(self, task_key: dict, owner: str):
        self._key = task_key
        self._owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lease")
        self._thread.start()

    def _run(self) -> None:
        seconds = settings().lease_seconds
        while not self._stop.wait(seconds / 3):
            if not tasks.renew_lease(self._key, self._owner, seconds):
                return

    def stop(self) -> None:
        self._stop.set()
