"""Export jobs: WebODM's asynchronous exports (`Export.post`, the Celery tasks `export_raster`
and `export_pointcloud`, `workers/check` and `workers/get`) on Aloft's work queue.

A job is one WorkTable item (key `queue` = "export", `job` = its id, WebODM's
`celery_task_id`), written once by the route and then only by conditional writes:

    pending --take (lease)--> running --finish--> done | error
                 ^---- lease ran out (a killed worker): taken again, at most MAX_ATTEMPTS times

The route sends one work message `{"kind": "export", "job": <id>}`; the `worker` function runs
it (`run_job`). A duplicated or replayed message finds the job done, or leased by the worker
running it, and does nothing, so a job never has two results. Its result is one object under
the task (`tasks/<task id>/exports/<job id>/<file>`), removed with the task, and tagged so the
bucket's lifecycle rule removes it after EXPORT_OBJECT_DAYS; the job item carries a TTL
(`expires_at`, EXPORT_SECONDS after it was created) and counts as unknown once past it, as
WebODM forgets its results after a day (`cleanup_tmp_directory`).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from typing import Callable

from . import assets, aws, queue, storage
from .config import settings
from .store import tasks
from .store.dynamo import ConditionFailed, Table

log = logging.getLogger(__name__)

_table = Table("work_table")
QUEUE = "export"
KIND = "export"
RASTERS = ("orthophoto", "dsm", "dtm")
POINT_CLOUD = "georeferenced_model"
BACKUP = "backup"               # a task's backup zip (chalicelib/backup.py), run as an export job
SOURCES = {"orthophoto": "orthophoto.tif", "dsm": "dsm.tif", "dtm": "dtm.tif",
           POINT_CLOUD: "georeferenced_model.laz"}
EXPORT_SECONDS = 24 * 3600
EXPORT_OBJECT_DAYS = 2          # the result outlives its job item (infra/resources.json)
EXPORT_TAG = "aloft-export=1"
MAX_ATTEMPTS = 3
RESEND_SECONDS = 60             # a pending job nobody took: `check` sends its message again
LEASE_MARGIN_SECONDS = 30
NOT_GENERATED = "Cannot generate file"


# ------------------------------------------------------------------ what a task offers

def source_key(task: dict, kind: str) -> str | None:
    """The S3 key of the task's orthophoto, DSM, DTM or point cloud, None when it has none.
    Rasters: the COG completion described (`rasters`); a task completed before rasters were
    described falls back to the asset itself."""
    rasters = task.get("rasters")
    if kind in RASTERS and isinstance(rasters, dict):
        entry = rasters.get(kind)
        return entry.get("key") if isinstance(entry, dict) else None
    asset = SOURCES[kind]
    if asset not in (task.get("available_assets") or []):
        return None
    return assets.asset_key(storage.task_prefix(task["id"]), asset)


def _ring_ok(ring) -> bool:
    if not isinstance(ring, list) or len(ring) < 4:
        return False
    for position in ring:
        if not isinstance(position, list) or len(position) < 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in position[:2]):
            return False
        if not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90):
            return False
    return True


def crop_geometry(task: dict) -> dict | None:
    """The task's `crop` as a GeoJSON Polygon or MultiPolygon in lon/lat, or None when it has
    none or it is not one (WebODM keeps only valid polygons)."""
    crop = task.get("crop")
    if not isinstance(crop, dict):
        return None
    if crop.get("type") == "Feature":
        crop = crop.get("geometry")
        if not isinstance(crop, dict):
            return None
    coordinates = crop.get("coordinates")
    if crop.get("type") == "Polygon":
        polygons = [coordinates]
    elif crop.get("type") == "MultiPolygon" and isinstance(coordinates, list):
        polygons = coordinates
    else:
        return None
    if not polygons or not all(isinstance(p, list) and p and all(_ring_ok(r) for r in p) for p in polygons):
        return None
    return {"type": crop["type"], "coordinates": coordinates}


# ------------------------------------------------------------------ job records

def _key(job_id: str) -> dict:
    return {"queue": QUEUE, "job": job_id}


def result_key(task_id: str, job_id: str, filename: str) -> str:
    return f"{storage.task_prefix(task_id)}exports/{job_id}/{filename}"


def create(task: dict, asset: str, params: dict, filename: str) -> dict:
    """Record a pending job (its id is new, so the write cannot meet another)."""
    job = _new_job(uuid.uuid4().hex, KIND, {"project_id": task["project_id"], "task_id": task["id"],
                                           "asset": asset, "params": params, "filename": filename})
    _table.put(job, condition="attribute_not_exists(#j)", names={"#j": "job"})
    return job


def _new_job(job_id: str, kind: str, fields: dict) -> dict:
    now = time.time()
    return {"queue": QUEUE, "job": job_id, "kind": kind, **fields, "state": "pending", "attempts": 0,
            "created": round(now, 3), "sent_at": round(now, 3), "expires_at": int(now + EXPORT_SECONDS)}


def new_job_request(kind: str, fields: dict) -> tuple[dict, tuple[str, dict]]:
    """A pending job of another kind (chalicelib/duplicate.py) and the transaction part that
    records it with the change that calls for it."""
    job = _new_job(uuid.uuid4().hex, kind, fields)
    return job, ("Put", _table.put_request(job, condition="attribute_not_exists(#j)", names={"#j": "job"}))


def create_once(task: dict, asset: str, params: dict, filename: str, job_id: str) -> tuple[dict, bool]:
    """The job of a result named by its inputs (a task's backup of one task version): recorded
    once, whoever asks and however often. (job, True) when this call recorded it (pending: send
    it); (job, False) when it was pending or running already. A finished one is recorded afresh
    (its result expired, or it failed): the caller only asks when the result is missing."""
    job = _new_job(job_id, KIND, {"project_id": task["project_id"], "task_id": task["id"], "asset": asset,
                                  "params": params, "filename": filename})
    try:
        _table.put(job, condition="attribute_not_exists(#j) OR #s IN (:done, :error) OR #ea < :now",
                   names={"#j": "job", "#s": "state", "#ea": "expires_at"},
                   values={":done": "done", ":error": "error", ":now": int(time.time())})
        return job, True
    except ConditionFailed:
        current = _table.get(_key(job_id))
        return (current or job), current is None


def get(job_id: str) -> dict | None:
    """A job not yet past its lifetime, else None."""
    if not isinstance(job_id, str) or not 1 <= len(job_id) <= 200:
        return None
    job = _table.get(_key(job_id))
    if job is None or job.get("expires_at", 0) < time.time():
        return None
    return job


def send(job: dict, delay: float = 0.0) -> bool:
    """The job's work message (False when SQS refused: `check` sends it again later)."""
    return queue.send_job(job.get("kind", KIND), job["job"], delay)


def requeue(job: dict, owner: str, forgive: bool = True, delay: float = 0.0) -> bool:
    """A job its runner could not finish in its time (a long copy): pending again, its attempts
    forgiven when the runner moved it on, and its message sent for the next runner. False when
    the lease was no longer ours (the other holder carries on)."""
    changes = {"state": "pending", "sent_at": round(time.time(), 3)}
    if forgive:
        changes["attempts"] = 0
    try:
        _table.update(_key(job["job"]), set=changes,
                      remove=("lease_owner", "lease_until"),
                      condition="#lo = :owner", names={"#lo": "lease_owner"}, values={":owner": owner})
    except ConditionFailed:
        return False
    send(job, delay)
    return True


def resend_if_stuck(job: dict) -> None:
    """A pending job whose message was lost (or is stuck) gets it again, once per RESEND_SECONDS
    whoever polls: the write is conditional on the time of the last send."""
    now = time.time()
    if job.get("state") != "pending" or now - float(job.get("sent_at", 0)) < RESEND_SECONDS:
        return
    try:
        _table.update(_key(job["job"]), set={"sent_at": round(now, 3)},
                      condition="#s = :pending AND #sa = :sa",
                      names={"#s": "state", "#sa": "sent_at"}, values={":pending": "pending", ":sa": job["sent_at"]})
    except ConditionFailed:
        return
    send(job)


def take(job_id: str, owner: str, seconds: float) -> tuple[dict | None, str]:
    """Lease a job to run it: (job, "taken"), or (None, why): "gone", "done" (finished or
    failed already) or "busy" (another worker holds an unexpired lease)."""
    now = time.time()
    try:
        job = _table.update(
            _key(job_id), set={"state": "running", "lease_owner": owner, "lease_until": round(now + seconds, 3)},
            add={"attempts": 1},
            condition="attribute_exists(#j) AND #s IN (:pending, :running) AND "
                      "(attribute_not_exists(#lu) OR #lu < :now)",
            names={"#j": "job", "#s": "state", "#lu": "lease_until"},
            values={":pending": "pending", ":running": "running", ":now": now})
    except ConditionFailed:
        current = _table.get(_key(job_id))
        if current is None:
            return None, "gone"
        return None, "busy" if current.get("state") == "running" else "done"
    return job, "taken"


def progress(job: dict, owner: str, status: str, percent: float) -> bool:
    """Record progress; False when the lease is no longer ours (stop working)."""
    try:
        _table.update(_key(job["job"]), set={"status": status, "progress": round(float(percent), 2)},
                      condition="#lo = :owner", names={"#lo": "lease_owner"}, values={":owner": owner})
        return True
    except ConditionFailed:
        return False


def finish(job: dict, owner: str, *, key: str | None = None, error: str | None = None) -> bool:
    """Done with its result object, or failed with WebODM's error text; only by the lease holder."""
    changes = {"state": "error", "error": error[:2000]} if error is not None else {"state": "done", "result": key}
    changes["finished"] = round(time.time(), 3)
    try:
        _table.update(_key(job["job"]), set=changes, remove=("lease_owner", "lease_until", "status", "progress"),
                      condition="#lo = :owner", names={"#lo": "lease_owner"}, values={":owner": owner})
        return True
    except ConditionFailed:
        return False


def give_up(job: dict) -> None:
    """A job whose workers died MAX_ATTEMPTS times (killed by the timeout, out of memory) fails."""
    try:
        _table.update(_key(job["job"]), set={"state": "error", "error": NOT_GENERATED,
                                             "finished": round(time.time(), 3)},
                      remove=("lease_owner", "lease_until", "status", "progress"),
                      condition="#s = :running AND #lo = :owner",
                      names={"#s": "state", "#lo": "lease_owner"},
                      values={":running": "running", ":owner": job.get("lease_owner")})
    except ConditionFailed:
        pass


# ------------------------------------------------------------------ what WebODM's workers answer

def check_body(job: dict | None) -> dict:
    """WebODM's `CheckTask.get` body for a job (None: unknown)."""
    if job is None:
        return {"ready": False}
    state = job.get("state")
    if state == "done":
        if storage.object_size(job["result"]) is None:
            return {"ready": True, "error": NOT_GENERATED}
        return {"ready": True}
    if state == "error":
        return {"ready": True, "error": job.get("error") or NOT_GENERATED}
    body: dict = {"ready": False}
    if state == "running" and "progress" in job:
        body.update(status=job.get("status", ""), progress=job["progress"])
    return body


# ------------------------------------------------------------------ the worker's part

def run_job(job_id: str, context=None, builders: dict[str, Callable] | None = None) -> str:
    """Run one export job to its end (the worker, for an export message); a word for the log.
    `builders`: makers of the job kinds other modules own, by asset (the worker passes
    backup's: `{BACKUP: backup.build_for_job}`), each `(task, job, report) -> key`."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
    owner = uuid.uuid4().hex
    # The lease ends when this invocation must have ended: a killed worker's message comes back
    # after the queue's visibility timeout (longer than the function's), the lease long gone.
    job, why = take(job_id, owner, remaining + LEASE_MARGIN_SECONDS)
    if job is None:
        return why
    if int(job.get("attempts", 1)) > MAX_ATTEMPTS:
        give_up(job)
        return "given up"
    task = tasks.get(int(job["project_id"]), job["task_id"])
    if task is None or tasks.is_hidden(task):
        finish(job, owner, error="Task not found")
        return "task gone"
    reporter = _Progress(job, owner)
    try:
        build = (builders or {}).get(job["asset"], _export)
        key = build(task, job, reporter)
    except ExportError as exc:
        finish(job, owner, error=str(exc))
        return "failed"
    except _LeaseLost:
        return "lease lost"
    except Exception as exc:  # noqa: BLE001 - WebODM reports the exception's text as the job's error
        log.exception("export %s of task %s failed", job_id, job["task_id"])
        finish(job, owner, error=str(exc) or exc.__class__.__name__)
        return "failed"
    finish(job, owner, key=key)
    return "done"


class ExportError(Exception):
    """An export that cannot be made (its text is the job's error)."""


class _LeaseLost(Exception):
    pass


class _Progress:
    """WebODM's PROGRESS meta, written at most every PROGRESS_SECONDS."""
    PROGRESS_SECONDS = 2.0

    def __init__(self, job: dict, owner: str):
        self.job, self.owner = job, owner
        self._last = 0.0

    def __call__(self, status: str, percent: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.PROGRESS_SECONDS:
            return
        self._last = now
        if not progress(self.job, self.owner, status, percent):
            raise _LeaseLost()


def _export(task: dict, job: dict, report) -> str:
    """Make the job's file in local scratch space, put it in S3, return its key."""
    source = source_key(task, job["asset"])
    if source is None:
        raise ExportError(NOT_GENERATED)
    key = result_key(task["id"], job["job"], job["filename"])
    with tempfile.TemporaryDirectory(prefix="aloft-export-") as scratch:
        if job["asset"] == POINT_CLOUD:
            from . import pointcloud

            path = pointcloud.export(source, task, job["params"], scratch, report)
        else:
            from .rasters import export as raster_export

            path = raster_export.export(source, task, job["asset"], job["params"], scratch, report)
        report("Finalizing", 100.0, force=True)
        aws.s3().upload_file(path, settings().bucket, key, ExtraArgs={
            "ContentType": assets.content_type_for(job["filename"]), "Tagging": EXPORT_TAG})
        os.unlink(path)
    return key
