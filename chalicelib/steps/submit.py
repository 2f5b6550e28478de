"""Getting a task onto a node: its uploads ingested, a node chosen, the images relayed.

The relay streams each image from S3 to the node, `ALOFT_UPLOAD_CONCURRENCY` at a time
(WebODM's UI sends 4 at once), and stops starting new images when the step's time runs
out: the next step goes on from there with the same node task. A task is committed on
a node once: an upload cut short by a crash is never committed, the next step starts a
new node task (NodeODM discards the uncommitted one).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from .. import ingest, storage, uploads
from .. import nodes as node_service
from ..config import settings
from ..models import StatusCode
from ..nodeodm import NodeConnectionError, NodeError, NodeResponseError, NodeServerError
from ..store import nodes as node_store
from .context import NODE_RESET, NOW, Outcome, StepContext, after, failed

OFFLINE_WHILE_RUNNING = ("Processing node went offline. This could be due to insufficient memory "
                         "or a network error.")
NO_NODE_RETRY_SECONDS = 30
UPLOAD_ATTEMPTS = 3
PROGRESS_WRITE_SECONDS = 2.0
USER_CHECK_SECONDS = 0.5  # a cancel stops a relay this fast (one read; a write every 2 s)
CLAIM_ATTEMPTS = 5
PREFETCH_MAX_BYTES = 64 * 1024 * 1024  # larger images stream from S3 straight to the node


def ingest_uploads(ctx: StepContext) -> Outcome:
    """Stored `upload/` bodies become images before anything counts or sends them."""
    result = ingest.ingest(ctx.task["id"], has_time=lambda: ctx.seconds_left() > 0)
    count, size = uploads.image_stats(ctx.task["id"])
    return Outcome("ingest", {"images_count": count, "size_bytes": size,
                              "ingest_pending": True if result.remaining else None}, NOW,
                   note=f"{len(result.stored)} files from {result.bodies} bodies, {count} images")


def assign(ctx: StepContext) -> Outcome:
    """The online node with the shortest queue (counting tasks sent since its last refresh),
    claimed with a conditional write so a burst of tasks spreads over the nodes."""
    images = int(ctx.task.get("images_count") or 0)
    for _ in range(CLAIM_ATTEMPTS):
        chosen = node_service.pick_node(node_store.list_all(), images)
        if chosen is None:
            return Outcome("assign", {}, after(NO_NODE_RETRY_SECONDS), note="no online node takes it", quiet=True)
        if node_store.claim(chosen):
            return Outcome("assign", {**NODE_RESET, "processing_node": chosen["id"]}, NOW,
                           note=f"node {chosen['id']}")
    return Outcome("assign", {}, NOW, note="nodes busy being claimed", quiet=True)


def node_offline(ctx: StepContext) -> Outcome:
    if ctx.task.get("status") == StatusCode.RUNNING:
        return failed("node-offline", OFFLINE_WHILE_RUNNING)
    # Queued or not yet sent: give it to another node.
    return Outcome("node-offline", {**NODE_RESET, "status": None}, NOW, note="handed to another node")


def forget_node(ctx: StepContext) -> Outcome:
    """The task's node was deleted."""
    return Outcome("forget-node", dict(NODE_RESET), NOW, note="its node was deleted")


def submit(ctx: StepContext) -> Outcome:
    """init → uploads → commit, resumable."""
    task = ctx.task
    if task.get("upload_resume_from") is None and storage.has_incoming(task["id"]):
        return ingest_uploads(ctx)  # bodies that arrived after commit go in first (never mid-upload)
    ctx.submitting = True
    client = ctx.client()
    node_uuid = task.get("uuid")
    resume_from = task.get("upload_resume_from")
    if node_uuid:
        try:
            client.task_info(node_uuid)
            # The node knows it: an earlier run committed but died before saying so.
            ctx.submitting = False
            return _committed(len(storage.list_images(task["id"])), "committed earlier")
        except NodeResponseError:
            pass  # not committed on the node
        except NodeError as exc:
            return _submit_error(ctx, exc)
    images = storage.images_for_node(task)
    if not images:
        return failed("submit", "Cannot process a task without images (need at least 1 file).")
    try:
        if not node_uuid or resume_from is None:
            # Fresh start, or an earlier upload died before recording where it was: a new init
            # is clean (an uncommitted upload is not a node task; NodeODM discards it).
            node_uuid = client.init_task(task.get("name") or "", task.get("options") or [])
            ctx.save({"uuid": node_uuid, "upload_progress": 0.0, "upload_resume_from": None, "node_committed": False})
            resume_from = 0
        reached = relay(ctx, node_uuid, images, int(resume_from))
        if reached < len(images):
            return Outcome("submit", {"upload_resume_from": reached, "upload_progress": round(reached / len(images), 4)},
                           NOW, note=f"paused at {reached} of {len(images)} images (time)")
        ctx.stop_if_user_acted()  # a cancel during the upload: the node never runs it
        client.commit(node_uuid)
    except NodeError as exc:
        return _submit_error(ctx, exc)
    ctx.submitting = False  # committed: this must be recorded whatever the user asked meanwhile
    return _committed(len(images), f"{len(images)} images on node {task.get('processing_node')}")


def _committed(count: int, note: str) -> Outcome:
    return Outcome("submit", {"node_committed": True, "upload_progress": 1.0, "upload_resume_from": None},
                   after(settings().follow_seconds), note=note)


def _submit_error(ctx: StepContext, exc: NodeError) -> Outcome:
    if isinstance(exc, NodeConnectionError):
        ctx.node_unreachable()
        if ctx.task.get("auto_processing_node"):
            # Unreachable: hand the task to another node (NodeODM discards an uncommitted upload).
            return Outcome("submit", dict(NODE_RESET), NOW, note=f"node unreachable, handed on: {exc}")
    prefix = "Connection error: " if isinstance(exc, NodeConnectionError) else ""
    return failed("submit", prefix + str(exc))


def relay(ctx: StepContext, node_uuid: str, images: list, start: int) -> int:
    """Stream images[start:] from S3 to the node, N at a time; returns how many images from the
    first are on the node (all of them, unless time ran out: then every upload started has
    finished, so the count is exact and the next step resumes there). Only that pause is
    resumable: a worker killed mid-upload leaves uploads whose end nobody saw, and NodeODM
    renames a file sent twice (`a.jpg`, `a_.jpg`), so its next step starts a new node task."""
    total = len(images)
    done = [False] * total
    reached = start
    next_index = start
    node = ctx.node()
    concurrency = settings().upload_concurrency
    gate = threading.Semaphore(concurrency)  # at most N requests at the node; the next N images are read meanwhile
    last_write = last_check = time.monotonic()
    with ThreadPoolExecutor(max_workers=2 * concurrency, thread_name_prefix="relay") as pool:
        in_flight: dict = {}
        try:
            while next_index < total or in_flight:
                while len(in_flight) < 2 * concurrency and next_index < total and ctx.seconds_left() > 0:
                    future = pool.submit(_upload_one, node, node_uuid, ctx.task["id"], images[next_index], gate)
                    in_flight[future] = next_index
                    next_index += 1
                if not in_flight:
                    break  # out of time: nothing more is started
                finished, _ = wait(list(in_flight), timeout=USER_CHECK_SECONDS, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = in_flight.pop(future)
                    future.result()  # a NodeError ends the relay (the others finish first)
                    done[index] = True
                while reached < total and done[reached]:
                    reached += 1
                if time.monotonic() - last_write >= PROGRESS_WRITE_SECONDS and reached < total:
                    ctx.save({"upload_progress": round(reached / total, 4)})
                    last_write = last_check = time.monotonic()
                elif time.monotonic() - last_check >= USER_CHECK_SECONDS:
                    ctx.stop_if_user_acted()
                    last_check = time.monotonic()
        finally:
            for future in in_flight:
                future.cancel()
    return reached


def _upload_one(node: dict, node_uuid: str, task_id: str, image, gate: threading.Semaphore) -> None:
    """Read the image from S3 (whole, when small enough: reading S3 while the node waits for each
    piece halves the node's speed), then send it once a place at the node is free."""
    client = node_service.client_for(node)
    key = image.key or storage.image_key(task_id, image.name)
    content = storage.read_object(key) if image.size <= PREFETCH_MAX_BYTES else None
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        body, size = (None, len(content)) if content is not None else storage.open_object(key)
        try:
            with gate:
                if content is not None:
                    client.upload_bytes(node_uuid, image.name, content)
                else:
                    client.upload(node_uuid, image.name, body, size)
            return
        except NodeResponseError as exc:
            if exc.no_retry or attempt == UPLOAD_ATTEMPTS:
                raise
        except NodeServerError:
            if attempt == UPLOAD_ATTEMPTS:
                raise
        finally:
            if body is not None:
                body.close()
        time.sleep(min(5.0, attempt))
