"""Duplicating projects and tasks: WebODM's `ProjectViewSet.duplicate` / `Project.duplicate` and
`TaskViewSet.duplicate` / `Task.duplicate`.

WebODM copies the rows and the task folders (hard links) inside one request. Here a task's
files are S3 objects, copied server-side (CopyObject up to ALOFT_COPY_MULTIPART_BYTES, 5 GB,
S3's limit; UploadPartCopy in parts above), never through a function's memory; its console
(TaskOutputTable chunks) and its raster fields and metadata documents are copied too, so the
copy's maps, tiles and thumbnail work as soon as it is ready. What Aloft derives on request is
not copied (exports, backups): the copy makes its own.

A project (up to 2,000 tasks) or a task (any number of objects) may take longer than a route's
29 s, so the work is a job on the work queue (an export-style job: chalicelib/exports.py's
records, leases and attempts, kind "duplicate"):

1. The route records, in one transaction, what the answer shows: the new project holding the
   new task ids (a project duplicate), or the new task's row (a task duplicate), and the job
   naming each (source task, new task) pair. It then runs the job itself for up to
   ALOFT_DUPLICATE_ROUTE_SECONDS (never into the last 5 s of its time), so a small project or
   task is answered complete, as WebODM answers; a message delayed past the route's lease
   takes over if the route's function dies.
2. The job first creates every missing row, then copies each task's objects and console and
   marks it ready. A row being copied carries `copying`: the API shows it as WebODM shows a
   task being imported (status 20 RUNNING, pending action 5 IMPORT, no assets), the worker
   leaves it alone, and once ready it is the source's twin (same status, assets, node and
   options; a copy of a task still on its node follows that node, as in WebODM).
3. A runner out of time hands the job on (pending again, a new message; its attempt forgiven
   when it moved the job on): every step is
   idempotent (conditional row creation, copies that skip what is there, chunks written under
   the same key), so a redelivered message or a killed function only repeats work. A job
   failing MAX_ATTEMPTS times marks its unfinished copies FAILED ("Cannot duplicate task").
"""
from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from . import aws, exports, queue, storage
from .config import settings
from .models import StatusCode, utcnow
from .s3stream import MiB, S3_MIN_PART_SIZE, S3_MAX_PARTS, iter_objects
from .store import output, projects, tasks
from .store.dynamo import ConditionFailed, transact

log = logging.getLogger(__name__)

KIND = "duplicate"
PROJECT_FAILED = "Cannot duplicate project"
TASK_FAILED = "Cannot duplicate task"
MAX_NAME = 255                       # WebODM's name columns: a longer copy name fails its save
NOT_COPIED = ("exports/", "backup/")  # derived on request: the copy makes its own
COPY_WORKERS = 16                    # objects copied at once
PART_WORKERS = 4                     # parts of one large object copied at once
MAX_PART_BYTES = 512 * MiB
COPY_BYTES_PER_SECOND = 50 * 1024**2  # a pessimistic server-side copy rate (time estimates)
SAFETY_SECONDS = 15.0
ROUTE_RESERVE_SECONDS = 5.0
LEASE_MARGIN_SECONDS = 10.0
WAIT_SECONDS = 30                    # before trying again a job that could not move on
_ROW_FIELDS_DROPPED = ("lease_owner", "lease_until", "step_token", "step_due", "active", "uploading",
                       "version", "ingest_pending", "copying", "copy_of")

HasTime = Callable[[float], bool]


class _LeaseLost(Exception):
    pass


class _TargetGone(Exception):
    pass


# ------------------------------------------------------------------ rows

def copy_name(name) -> str:
    """WebODM's `gettext('Copy of %(task)s')` (a nameless task gives "Copy of None", as WebODM)."""
    return f"Copy of {name}"


def _rewrite_rasters(rasters, source_prefix: str, target_prefix: str):
    if not isinstance(rasters, dict):
        return rasters
    out = {}
    for kind, entry in rasters.items():
        if isinstance(entry, dict) and isinstance(entry.get("key"), str) and entry["key"].startswith(source_prefix):
            entry = {**entry, "key": target_prefix + entry["key"][len(source_prefix):]}
        out[kind] = entry
    return out


def copy_row(source: dict, new_id: str, project_id: int, rename: bool) -> dict:
    """The copy's row: every field of the source's (status, assets, node, options, console
    counters, raster fields with keys under the copy's prefix), a new id, created now, in its
    project, being copied."""
    row = {k: v for k, v in source.items() if k not in _ROW_FIELDS_DROPPED}
    row.update(id=new_id, project_id=project_id, created_at=utcnow(), copying=True, copy_of=source["id"])
    if rename:
        row["name"] = copy_name(source.get("name"))
    if "rasters" in row:
        row["rasters"] = _rewrite_rasters(row["rasters"], storage.task_prefix(source["id"]),
                                          storage.task_prefix(new_id))
    return row


def _ensure_row(job: dict, source_id: str, new_id: str) -> dict | None:
    """The copy's row, created from its source now if it is not there yet; None when the source
    is gone (its id leaves the new project). _TargetGone when the target project is."""
    target = int(job["project_id"])
    existing = tasks.get(target, new_id)
    if existing is not None:
        return existing
    source = tasks.get(int(job["source_project_id"]), source_id)
    if source is None or tasks.is_hidden(source):
        try:
            projects.forget_task(target, new_id)
        except ConditionFailed:
            raise _TargetGone() from None
        return None
    row = copy_row(source, new_id, target, bool(job.get("rename")))
    try:
        transact(tasks.create_request(row), ("ConditionCheck", projects.visible_check_request(target)))
    except ConditionFailed:
        existing = tasks.get(target, new_id)
        if existing is None:
            raise _TargetGone() from None
        return existing
    return {**row, "version": 1}


def _finish_row(project_id: int, task_id: str, failed: bool = False) -> dict | None:
    """The copy is ready (or failed): `copying` goes, and a copy that needs its worker (a task
    still on its node) gets its first message. None when the row is gone (removed meanwhile)."""
    for _ in range(8):
        current = tasks.get(project_id, task_id)
        if current is None:
            return None
        if not current.get("copying"):
            return current
        changes = {"status": int(StatusCode.FAILED), "last_error": TASK_FAILED} if failed else {}
        after = {k: v for k, v in {**current, **changes}.items() if k != "copying"}
        if tasks.needs_poller(after):
            changes.update(queue.wake_fields())
        try:
            written = tasks.update(current, changes, remove_fields=("copying",))
        except ConditionFailed:
            time.sleep(0.01)
            continue
        if written.get("step_token") and written.get("step_token") != current.get("step_token"):
            queue.send(written)
        return written
    raise ConditionFailed(f"task {task_id} kept changing")


# ------------------------------------------------------------------ objects

def _part_size(size: int, threshold: int) -> int:
    need = math.ceil(size / (S3_MAX_PARTS - 100))
    return max(S3_MIN_PART_SIZE, min(threshold, MAX_PART_BYTES), need)


def copy_object(source_key: str, target_key: str, size: int) -> None:
    """One object, server-side: CopyObject (metadata and type kept), or above the threshold a
    multipart upload of UploadPartCopy ranges (aborted on any failure)."""
    s3, bucket = aws.s3(), settings().bucket
    threshold = settings().copy_multipart_bytes
    source = {"Bucket": bucket, "Key": source_key}
    if size <= threshold:
        s3.copy_object(Bucket=bucket, Key=target_key, CopySource=source)
        return
    head = s3.head_object(**source)
    extra = {"Metadata": head.get("Metadata") or {}}
    if head.get("ContentType"):
        extra["ContentType"] = head["ContentType"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=target_key, **extra)["UploadId"]
    part = _part_size(size, threshold)
    ranges = [(n + 1, start, min(size, start + part) - 1) for n, start in enumerate(range(0, size, part))]

    def copy_part(spec):
        number, first, last = spec
        reply = s3.upload_part_copy(Bucket=bucket, Key=target_key, UploadId=upload_id, PartNumber=number,
                                    CopySource=source, CopySourceRange=f"bytes={first}-{last}",
                                    CopySourceIfMatch=head["ETag"])
        return {"PartNumber": number, "ETag": reply["CopyPartResult"]["ETag"]}

    try:
        with ThreadPoolExecutor(PART_WORKERS, thread_name_prefix="copy-part") as pool:
            parts = list(pool.map(copy_part, ranges))
        s3.complete_multipart_upload(Bucket=bucket, Key=target_key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    except BaseException:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=target_key, UploadId=upload_id)
        except Exception:  # noqa: BLE001 - the bucket's lifecycle rule aborts it in two days
            pass
        raise


def _missing(error: Exception) -> bool:
    return getattr(error, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


def copy_objects(source_id: str, target_id: str, has_time: HasTime, progress=None) -> bool:
    """Copy every object of the source task to the copy's prefix, COPY_WORKERS at a time; what
    the copy already holds at the same size is skipped (a resumed job). False when time ran
    out first (the rest is copied next time)."""
    s3, bucket = aws.s3(), settings().bucket
    source_prefix, target_prefix = storage.task_prefix(source_id), storage.task_prefix(target_id)
    present = {o["Key"][len(target_prefix):]: int(o["Size"]) for o in iter_objects(s3, bucket, target_prefix)}
    slots = threading.BoundedSemaphore(COPY_WORKERS)
    errors: list[BaseException] = []
    complete = True

    def run(key: str, rel: str, size: int) -> None:
        try:
            copy_object(key, target_prefix + rel, size)
        except Exception as exc:  # noqa: BLE001
            if not _missing(exc):  # removed since it was listed: nothing to copy
                errors.append(exc)
        finally:
            slots.release()

    with ThreadPoolExecutor(COPY_WORKERS, thread_name_prefix="copy") as pool:
        for obj in iter_objects(s3, bucket, source_prefix):
            rel, size = obj["Key"][len(source_prefix):], int(obj["Size"])
            if rel.startswith(NOT_COPIED) or present.get(rel) == size:
                continue
            slots.acquire()
            if errors or not has_time(0.2 + size / COPY_BYTES_PER_SECOND):
                slots.release()
                complete = False
                break
            pool.submit(run, obj["Key"], rel, size)
            if progress is not None:
                progress.made = True
    if errors:
        raise errors[0]
    return complete


# ------------------------------------------------------------------ the job

def _pairs(job: dict) -> list[tuple[str, str]]:
    return [(p[0], p[1]) for p in job.get("pairs") or ()]


class _Progress:
    made = False


def _run(job: dict, owner: str, has_time: HasTime, progress: _Progress) -> bool:
    """Carry the job on; True when every copy is ready."""
    target = int(job["project_id"])
    pairs = _pairs(job)
    rows: dict[str, dict | None] = {}
    for source_id, new_id in pairs:  # 1. every row, so the whole copy shows at once
        if not has_time(0.5):
            return False
        rows[new_id] = _ensure_row(job, source_id, new_id)
        progress.made = True
    for n, (source_id, new_id) in enumerate(pairs):  # 2. files, console, ready
        row = rows[new_id] if rows[new_id] is None else tasks.get(target, new_id)
        if row is None:
            storage.delete_task_objects(new_id)  # removed meanwhile: nothing of it may stay
            continue
        if not row.get("copying"):
            continue
        if not exports.progress(job, owner, "Copying", 100.0 * n / max(1, len(pairs))):
            raise _LeaseLost()
        source = tasks.get(int(job["source_project_id"]), source_id)
        if source is not None and source.get("copying"):
            return False  # a copy of a copy still being made: its files are not all there yet
        if not copy_objects(source_id, new_id, has_time, progress):
            return False
        if not has_time(1.0):
            return False
        output.copy(source_id, new_id)
        if _finish_row(target, new_id) is None:
            storage.delete_task_objects(new_id)
        progress.made = True
    return True


def _fail(job: dict) -> None:
    """A job that cannot finish: its copies not yet ready fail, as WebODM's would not exist."""
    for _, new_id in _pairs(job):
        try:
            _finish_row(int(job["project_id"]), new_id, failed=True)
        except ConditionFailed:
            pass


def _execute(job: dict, owner: str, deadline: float) -> str:
    def has_time(estimate: float = 0.0) -> bool:
        return time.monotonic() + estimate < deadline

    progress = _Progress()
    try:
        finished = _run(job, owner, has_time, progress)
    except _LeaseLost:
        return "lease lost"
    except _TargetGone:
        exports.finish(job, owner, error=PROJECT_FAILED)
        for _, new_id in _pairs(job):
            storage.delete_task_objects(new_id)
        return "target gone"
    if finished:
        exports.finish(job, owner, key="")
        return "done"
    # attempts are forgiven only for a run that moved on: one that never can still gives up
    # (and a run that could not move waits a little: its source is a copy still being made)
    return "continued" if exports.requeue(job, owner, forgive=progress.made,
                                          delay=0 if progress.made else WAIT_SECONDS) else "lease lost"


def run_job(job_id: str, context=None) -> str:
    """The worker's part, for a "duplicate" message: a word for the log."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
    owner = uuid.uuid4().hex
    job, why = exports.take(job_id, owner, remaining + LEASE_MARGIN_SECONDS)
    if job is None:
        return why
    if int(job.get("attempts", 1)) > exports.MAX_ATTEMPTS:
        _fail(job)
        exports.give_up(job)
        return "given up"
    return _execute(job, owner, time.monotonic() + max(1.0, remaining - SAFETY_SECONDS))


def _run_in_route(job: dict, context) -> None:
    """Do what fits in the route's budget; the worker does the rest (or all of it)."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 0.0
    budget = min(settings().duplicate_route_seconds, remaining - ROUTE_RESERVE_SECONDS)
    if budget < 1.0:
        exports.send(job)
        return
    owner = uuid.uuid4().hex
    lease = budget + LEASE_MARGIN_SECONDS
    taken, _ = exports.take(job["job"], owner, lease)
    exports.send(job, delay=lease + 1)  # takes over if this function dies before it hands the job on
    if taken is None:
        return
    try:
        _execute(taken, owner, time.monotonic() + budget)
    except Exception:  # noqa: BLE001 - the delayed message's runner carries on
        log.exception("duplicate job %s: the route's part failed; the worker carries on", job["job"])


# ------------------------------------------------------------------ what the routes start

def duplicate_task(project: dict, task: dict, context=None) -> dict | None:
    """A copy of `task` in its project named "Copy of <name>" (WebODM's `Task.duplicate()`), as
    it stands when the route answers; None when it cannot be made (WebODM's error answer)."""
    new_id = str(uuid.uuid4())
    row = copy_row(task, new_id, project["id"], rename=True)
    if len(str(row.get("name"))) > MAX_NAME:
        return None
    job, job_part = exports.new_job_request(KIND, {
        "project_id": project["id"], "source_project_id": project["id"], "pairs": [[task["id"], new_id]],
        "rename": True})
    try:
        transact(tasks.create_request(row), ("Update", projects.add_task_request(project["id"], new_id)), job_part)
    except ConditionFailed:
        return None  # the project is full, or being deleted
    _run_in_route(job, context)
    return tasks.get(project["id"], new_id) or {**row, "version": 1}


def duplicate_project(user: dict, project: dict, context=None) -> dict | None:
    """A copy of `project` (WebODM's `Project.duplicate(new_owner=...)`): "Copy of <name>", owned
    by `user`, created now, private, with a copy of every task under its own name; None when it
    cannot be made (WebODM's error answer)."""
    name = copy_name(project.get("name"))
    if len(name) > MAX_NAME:
        return None
    pairs = [[source_id, str(uuid.uuid4())] for source_id in sorted(project.get("tasks") or ())]
    fields = {"name": name, "description": project.get("description", ""), "tags": project.get("tags") or [],
              "public": False, "public_edit": False, "public_id": None}
    item, project_part = projects.create_request(user["id"], fields, utcnow(), [new for _, new in pairs])
    if not pairs:
        transact(project_part)
        return item
    job, job_part = exports.new_job_request(KIND, {
        "project_id": item["id"], "source_project_id": project["id"], "pairs": pairs, "rename": False})
    transact(project_part, job_part)
    _run_in_route(job, context)
    return item
