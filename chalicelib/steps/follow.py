"""Following a task on its node: status, progress and console, then the results.

While the node has the task queued or running, the next look is ALOFT_FOLLOW_SECONDS
away (WebODM's worker looks every 5 s). When the node says COMPLETED the results are
collected at once: all.zip streamed to S3, WebODM's assets made from it, and only then
status 40, so a COMPLETED task can always be downloaded.
"""
from __future__ import annotations

import logging

from .. import assets, aws, storage
from ..completion import collect_results
from ..config import settings
from ..models import StatusCode
from ..nodeodm import NodeConnectionError, NodeError, NodeResponseError, NodeServerError
from ..store import output
from .context import NOTHING, NOW, Outcome, StepContext, after, failed

log = logging.getLogger(__name__)
FAILED_WITHOUT_MESSAGE = "The processing node reported a failure without a message."
RUNNING_WEIGHT = 0.85
DOWNLOADING_PROGRESS = 0.9


def poll(ctx: StepContext) -> Outcome:
    task = ctx.task
    follow = after(settings().follow_seconds)
    try:
        info = ctx.client().task_info(task["uuid"], with_output=int(task.get("node_output_lines") or 0))
    except NodeConnectionError as exc:
        ctx.node_unreachable()
        return Outcome("poll", {}, follow, note=f"node unreachable: {exc}")  # never a failure by itself
    except NodeResponseError as exc:
        return failed("poll", str(exc))  # e.g. "<uuid> not found": the node forgot the task
    except NodeServerError as exc:
        log.warning("Node answered oddly for task %s: %s", task["id"], exc)
        return Outcome("poll", {}, follow, quiet=True)
    changes: dict = {"processing_time": info.processing_time}
    if info.error_message:
        changes["last_error"] = info.error_message
    status = info.status
    if status == StatusCode.RUNNING and info.processing_time < 0:
        # NodeODM reports a new task RUNNING with processingTime -1 while it sets it up, then
        # QUEUED behind others; a run starts its clock at once. Counted as queued, so a busy
        # node does not make a task flap RUNNING → QUEUED → RUNNING (nor send task.running twice).
        status = StatusCode.QUEUED
    if status == StatusCode.RUNNING:
        changes["running_progress"] = round(min(100.0, max(0.0, info.progress)) / 100 * RUNNING_WEIGHT, 4)
    if status in (StatusCode.QUEUED, StatusCode.RUNNING, StatusCode.CANCELED):
        changes["status"] = int(status)
    elif status == StatusCode.FAILED:
        changes["status"] = int(status)
        changes["last_error"] = info.error_message or FAILED_WITHOUT_MESSAGE
    elif status == StatusCode.COMPLETED:
        # Not 40 yet: the results must be downloadable first.
        changes.update(status=int(StatusCode.RUNNING), running_progress=RUNNING_WEIGHT, node_completed=True)
    if status == StatusCode.COMPLETED:
        follow = NOW
    elif status not in (StatusCode.QUEUED, StatusCode.RUNNING):
        follow = NOTHING
    ops = _console(ctx, info.output)
    news = status != task.get("status") or status == StatusCode.COMPLETED
    return Outcome("poll", {**changes, **ops[1]}, follow, ops=ops[0], quiet=not news,
                   note=f"node status {int(status)}")


def _console(ctx: StepContext, lines: list[str]) -> tuple[tuple, dict]:
    """Console lines in bounded batches: all but the last written now, the last returned to go
    with the step's final write, so each node line is stored exactly once."""
    while lines:
        ops, changes, consumed = output.append_plan(ctx.task, lines)
        lines = lines[consumed:]
        if not lines:
            return tuple(ops), changes
        ctx.save(changes, tuple(ops))
    return (), {}


def complete(ctx: StepContext) -> Outcome:
    """all.zip node → S3 (streamed), WebODM's assets from it, then status 40."""
    from ..s3stream import copy_stream_to_s3

    task = ctx.task
    client = ctx.client(timeout=60.0)
    prefix = storage.task_prefix(task["id"])
    ctx.save({"running_progress": DOWNLOADING_PROGRESS})
    try:
        with client.download_all_zip(task["uuid"]) as (stream, _length):
            copy_stream_to_s3(aws.s3(), stream, settings().bucket, prefix + "all.zip", content_type="application/zip")
    except NodeConnectionError as exc:
        ctx.node_unreachable()
        return Outcome("complete", {}, after(settings().follow_seconds), note=f"node unreachable: {exc}")
    except NodeError as exc:
        return failed("complete", str(exc))
    try:
        changes = collect_results(task["id"])
    except assets.InvalidZipError as exc:
        log.warning("Task %s: %s (%s)", task["id"], exc, exc.detail)
        return failed("complete", str(exc))
    return Outcome("complete", {**changes, "node_completed": None}, NOTHING,
                   note=f"{len(changes['available_assets'])} assets, rasters: {sorted(changes['rasters']) or 'none'}")
