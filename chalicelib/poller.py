"""One poll cycle: refresh nodes, find active tasks, advance each one step, and carry
on the jobs the API handed over (store/work.py: project removals, user hand-overs).

The scheduled `poller` function (app.py) runs this every minute on AWS; the local
stack runs it every few seconds. Each active task is advanced under a lease (one
poller at a time per task) and every write is conditional on the task's version
and on still holding the lease, so overlapping cycles, a killed Lambda or a node
that vanishes never submit a task twice, lose a status or resurrect a removed task.

The step for a task (README, How it works):
  pending REMOVE / CANCEL / RESTART → carry it out;
  no node and automatic assignment → pick a node, then submit;
  node but nothing committed there → init, upload images streamed from S3, commit;
  on the node → poll status and console; COMPLETED → all.zip to S3, assets, then 40.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid as uuid_lib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import assets, aws, ingest, removal, storage, uploads
from . import nodes as node_service
from .config import settings
from .models import PendingAction, StatusCode
from .nodeodm import NodeConnectionError, NodeError, NodeResponseError, NodeServerError
from .store import nodes as node_store
from .store import output, tasks, work
from .store.dynamo import ConditionFailed, transact

log = logging.getLogger(__name__)

OFFLINE_WHILE_RUNNING = ("Processing node went offline. This could be due to insufficient memory "
                         "or a network error.")
NO_NODE_FOR_RESTART = "Cannot restart a task that has no processing node"
FAILED_WITHOUT_MESSAGE = "The processing node reported a failure without a message."
SAFETY_MARGIN_SECONDS = 10.0
UPLOAD_ATTEMPTS = 3
PROGRESS_WRITE_SECONDS = 2.0
RUNNING_WEIGHT = 0.85
DOWNLOADING_PROGRESS = 0.9


class LeaseLost(Exception):
    """Stop this step without writing: another poller owns the task now, it is gone, or
    the user asked for something that must run first."""


@dataclass
class Cycle:
    """What one poll cycle knows: its lease id, the nodes, the deadline, counters."""
    owner: str
    nodes: dict[int, dict]
    deadline: float
    queue_counts: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stats: dict[str, int] = field(default_factory=dict)

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def count(self, what: str) -> None:
        with self.lock:
            self.stats[what] = self.stats.get(what, 0) + 1

    def reserve_node(self, images_count: int) -> dict | None:
        """Pick the least-queued online node and count the new task against it at once,
        so one cycle spreads many new tasks over the nodes."""
        with self.lock:
            candidates = [{**n, "queue_count": self.queue_counts.get(n["id"], n.get("queue_count") or 0)}
                          for n in self.nodes.values()]
            chosen = node_service.pick_node(candidates, images_count)
            if chosen is not None:
                self.queue_counts[chosen["id"]] = chosen["queue_count"] + 1
            return chosen


# ---------------------------------------------------------------------------- the cycle

def run_cycle(context=None) -> dict:
    """Run one cycle within the Lambda's remaining time; returns counters for the logs."""
    config = settings()
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 60.0
    deadline = time.monotonic() + max(1.0, remaining - SAFETY_MARGIN_SECONDS)
    nodes = node_service.refresh_all(node_store.list_all())
    cycle = Cycle(owner=uuid_lib.uuid4().hex, nodes={n["id"]: n for n in nodes}, deadline=deadline)
    active = tasks.list_active()
    jobs = work.list_all()
    removing = {job["project_id"] for job in jobs if job.get("kind") == work.REMOVE_PROJECT}
    with ThreadPoolExecutor(max_workers=max(1, config.poll_workers), thread_name_prefix="poll") as pool:
        for job in jobs:
            pool.submit(_run_job_safely, cycle, job)
        for task in active:
            if task["project_id"] in removing and not task.get("uuid"):
                continue  # nothing on a node: its project's removal job removes it
            pool.submit(_advance_safely, cycle, task)
    cycle.stats.update(nodes=len(nodes), active=len(active), jobs=len(jobs))
    return cycle.stats


def _run_job_safely(cycle: Cycle, job: dict) -> None:
    """Carry on a job the API handed over (removal.run_job) until it is done or the cycle
    ends, under a lease that lasts the cycle: overlapping cycles never run one job twice."""
    if cycle.seconds_left() <= 0:
        cycle.count("deferred")
        return
    if not work.acquire(job, cycle.owner, time.time() + cycle.seconds_left() + SAFETY_MARGIN_SECONDS):
        cycle.count("busy")
        return
    done = False
    try:
        done = removal.run_job(job, has_time=lambda: cycle.seconds_left() > 0)
        cycle.count("jobs_done" if done else "jobs_continued")
    except Exception:  # retried next cycle
        log.exception("Job %s failed", job.get("job"))
        cycle.count("errors")
    finally:
        if not done:
            work.release(job, cycle.owner)


def _advance_safely(cycle: Cycle, task: dict) -> None:
    if cycle.seconds_left() <= 0:
        cycle.count("deferred")
        return
    leased = tasks.acquire_lease(task, cycle.owner, settings().lease_seconds)
    if leased is None:
        cycle.count("busy")
        return
    renewer = _LeaseRenewer(leased, cycle.owner)
    step = Step(cycle, leased)
    try:
        step.run()
        cycle.count("advanced")
    except LeaseLost:
        cycle.count("lost")  # the release below is conditional: harmless if no longer ours
    except Exception:  # one task's surprise must not stop the others; it is retried next cycle
        log.exception("Advancing task %s failed", task.get("id"))
        cycle.count("errors")
    finally:
        renewer.stop()
        if not step.released:
            tasks.release_lease(leased, cycle.owner)


class _LeaseRenewer:
    """Keeps a long step's lease alive (a large upload or all.zip copy outlasts one lease)."""

    def __init__(self, task: dict, owner: str):
        self._key = tasks.key(task)
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


# ---------------------------------------------------------------------------- one step

class Step:
    def __init__(self, cycle: Cycle, task: dict):
        self.cycle = cycle
        self.task = task
        self.released = False
        self.submitting = False

    # -- writing -------------------------------------------------------------------------
    def save(self, changes: dict, extra_ops: tuple = (), release: bool = True) -> dict:
        """Conditional write (our version and our lease), by default the step's last one,
        which also releases the lease. On a version conflict caused by a user's edit,
        re-apply the same observation on the fresh item; if the user's pending action
        changed, or the lease is gone, stop."""
        for _ in range(5):
            update, new = tasks.update_request(self.task, changes, lease_owner=self.cycle.owner,
                                               release_lease=release)
            try:
                transact(update, *extra_ops) if extra_ops else tasks.write(update)
                self.task = new
                self.released = release
                return new
            except ConditionFailed:
                fresh = tasks.get(self.task["project_id"], self.task["id"])
                if fresh is None or fresh.get("lease_owner") != self.cycle.owner:
                    raise LeaseLost() from None
                if extra_ops or ("pending_action" in changes and
                                 fresh.get("pending_action") != self.task.get("pending_action")):
                    raise LeaseLost() from None
                if self.submitting and "uuid" not in changes and fresh.get("pending_action") is not None:
                    # Cancel, remove or restart arrived mid-upload: stop now (the node's uuid is
                    # saved; an uncommitted upload is discarded by the node) and let it run next.
                    raise LeaseLost() from None
                self.task = fresh
        raise LeaseLost()

    def fail(self, message: str) -> None:
        self.save({"status": int(StatusCode.FAILED), "last_error": message[:4000], "pending_action": None})

    @property
    def node(self) -> dict | None:
        node_id = self.task.get("processing_node")
        return self.cycle.nodes.get(node_id) if node_id is not None else None

    def client(self, timeout: float = 30.0):
        return node_service.client_for(self.node, timeout)

    # -- dispatch ------------------------------------------------------------------------
    def run(self) -> None:
        task = self.task
        action = task.get("pending_action")
        if action == PendingAction.REMOVE:
            return self.remove()
        if action == PendingAction.CANCEL:
            return self.cancel()
        if action == PendingAction.RESTART:
            return self.restart()
        if action is not None:  # actions Aloft does not perform (resize, import, compact)
            return self.save({"pending_action": None})
        if task.get("ingest_pending") and not self.ingest():
            return None
        task = self.task
        if task.get("status") not in tasks.POLLER_IDLE_STATUSES:
            return self.save({})  # finished: the write re-derives `active` and drops it
        node_id = task.get("processing_node")
        if node_id is not None and node_id not in self.cycle.nodes:
            return self.save({"processing_node": None, "uuid": "", "node_committed": False})
        if node_id is None:
            if not task.get("auto_processing_node"):
                return None
            if not self.assign():
                return None
        if task.get("auto_processing_node") and not node_service.is_online(self.node):
            return self.node_offline()
        if not self.task.get("node_committed"):
            return self.submit()
        return self.poll()

    # -- uploads ---------------------------------------------------------------------------
    def ingest(self) -> bool:
        """Turn stored `upload/` bodies into images (ingest.py) before anything counts or
        sends them; True when none are left (the step goes on), False when out of time."""
        result = ingest.ingest(self.task["id"], has_time=lambda: self.cycle.seconds_left() > 0)
        count, size = uploads.image_stats(self.task["id"])
        done = not result.remaining
        self.save({"images_count": count, "size_bytes": size, "ingest_pending": None if done else True},
                  release=not done)
        return done

    # -- assignment and liveness -----------------------------------------------------------
    def assign(self) -> bool:
        chosen = self.cycle.reserve_node(int(self.task.get("images_count") or 0))
        if chosen is None:
            return False  # no online node takes it: try again next cycle
        self.save({"processing_node": chosen["id"], "uuid": "", "node_committed": False}, release=False)
        return True

    def node_offline(self) -> None:
        if self.task.get("status") == StatusCode.RUNNING:
            return self.fail(OFFLINE_WHILE_RUNNING)
        # Queued or not yet sent: give it to another node next cycle.
        self.save({"processing_node": None, "uuid": "", "status": None, "node_committed": False,
                   "upload_progress": 0.0, "upload_resume_from": None})

    # -- submission ----------------------------------------------------------------------
    def submit(self) -> None:
        """init → uploads → commit, resumable; never two node tasks for one Aloft task."""
        if self.task.get("upload_resume_from") is None and storage.has_incoming(self.task["id"]) \
                and not self.ingest():
            return None  # bodies that arrived after commit go in first (never mid-upload)
        self.submitting = True
        client = self.client()
        node_uuid = self.task.get("uuid")
        resume_from = self.task.get("upload_resume_from")
        if node_uuid:
            try:
                client.task_info(node_uuid)
                # The node knows it: an earlier run committed but died before saying so.
                self.submitting = False
                return self.save({"node_committed": True, "upload_progress": 1.0, "upload_resume_from": None})
            except NodeResponseError:
                pass  # not committed on the node
            except NodeError as exc:
                return self._submit_error(exc)
        images = storage.list_images(self.task["id"])
        if not images:
            return self.fail("Cannot process a task without images (need at least 1 file).")
        try:
            if not node_uuid or resume_from is None:
                # Fresh start, or an earlier upload died at an unknown point: a new init is
                # clean (an uncommitted upload is not a node task; NodeODM discards it).
                node_uuid = client.init_task(self.task.get("name") or "", self.task.get("options") or [])
                self.save({"uuid": node_uuid, "upload_progress": 0.0, "upload_resume_from": None,
                           "node_committed": False}, release=False)
                resume_from = 0
            self._upload(client, node_uuid, images, int(resume_from))
            client.commit(node_uuid)
        except NodeError as exc:
            return self._submit_error(exc)
        self.submitting = False  # committed: this must be recorded whatever the user asked meanwhile
        self.save({"node_committed": True, "upload_progress": 1.0, "upload_resume_from": None})

    def _upload(self, client, node_uuid: str, images: list, start: int) -> None:
        last_write = time.monotonic()
        for index in range(start, len(images)):
            if self.cycle.seconds_left() <= 0:
                # Out of time: record exactly what is on the node; the next cycle continues.
                self.save({"upload_resume_from": index, "upload_progress": index / len(images)})
                raise _Paused()
            self._upload_one(client, node_uuid, images[index])
            if time.monotonic() - last_write >= PROGRESS_WRITE_SECONDS:
                self.save({"upload_progress": round((index + 1) / len(images), 4)}, release=False)
                last_write = time.monotonic()

    def _upload_one(self, client, node_uuid: str, image) -> None:
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            body, size = storage.open_object(storage.image_key(self.task["id"], image.name))
            try:
                client.upload(node_uuid, image.name, body, size)
                return
            except NodeResponseError as exc:
                if exc.no_retry or attempt == UPLOAD_ATTEMPTS:
                    raise
            except NodeServerError:
                if attempt == UPLOAD_ATTEMPTS:
                    raise
            finally:
                body.close()
            time.sleep(min(5.0, attempt))

    def _submit_error(self, exc: NodeError) -> None:
        if isinstance(exc, _Paused):
            return None
        if isinstance(exc, NodeConnectionError) and self.task.get("auto_processing_node"):
            # The node is unreachable: hand the task to another node (an uncommitted
            # upload there is discarded by NodeODM), rather than failing it.
            return self.save({"processing_node": None, "uuid": "", "node_committed": False,
                              "upload_progress": 0.0, "upload_resume_from": None})
        prefix = "Connection error: " if isinstance(exc, NodeConnectionError) else ""
        return self.fail(prefix + str(exc))

    # -- status --------------------------------------------------------------------------
    def poll(self) -> None:
        node_uuid = self.task["uuid"]
        try:
            info = self.client().task_info(node_uuid, with_output=int(self.task.get("node_output_lines") or 0))
        except NodeConnectionError:
            return None  # retried next cycle; never a failure
        except NodeResponseError as exc:
            return self.fail(str(exc))  # e.g. "<uuid> not found": the node forgot the task
        except NodeServerError as exc:
            log.warning("Node answered oddly for task %s: %s", self.task["id"], exc)
            return None
        changes: dict = {"processing_time": info.processing_time}
        if info.error_message:
            changes["last_error"] = info.error_message
        status = info.status
        if status == StatusCode.RUNNING:
            changes["running_progress"] = round(min(100.0, max(0.0, info.progress)) / 100 * RUNNING_WEIGHT, 4)
        if status in (StatusCode.QUEUED, StatusCode.RUNNING, StatusCode.CANCELED):
            changes["status"] = int(status)
        elif status == StatusCode.FAILED:
            changes["status"] = int(status)
            changes["last_error"] = info.error_message or FAILED_WITHOUT_MESSAGE
        elif status == StatusCode.COMPLETED:
            # Not 40 yet: results must be downloadable first.
            changes["status"] = int(StatusCode.RUNNING)
            changes["running_progress"] = RUNNING_WEIGHT
        completed = status == StatusCode.COMPLETED
        self._save_with_output(changes, info.output, release=not completed)
        if completed:
            self.complete()

    def _save_with_output(self, changes: dict, lines: list[str], release: bool) -> None:
        while True:
            ops, output_changes, consumed = output.append_plan(self.task, lines) if lines else ([], {}, 0)
            lines = lines[consumed:]
            self.save({**changes, **output_changes}, extra_ops=tuple(ops), release=release and not lines)
            if not lines:
                return

    # -- completion ----------------------------------------------------------------------
    def complete(self) -> None:
        """all.zip node → S3 (streamed), WebODM assets from it, then status 40."""
        from .s3stream import copy_stream_to_s3

        client = self.client(timeout=60.0)
        zip_key = storage.task_prefix(self.task["id"]) + "all.zip"
        self.save({"running_progress": DOWNLOADING_PROGRESS}, release=False)
        try:
            with client.download_all_zip(self.task["uuid"]) as (stream, _length):
                copy_stream_to_s3(aws.s3(), stream, settings().bucket, zip_key, content_type="application/zip")
        except NodeConnectionError:
            return None  # try again next cycle
        except NodeError as exc:
            return self.fail(str(exc))
        try:
            result = assets.extract_assets(aws.s3(), settings().bucket, storage.task_prefix(self.task["id"]))
        except assets.InvalidZipError as exc:
            log.warning("Task %s: %s (%s)", self.task["id"], exc, exc.detail)
            return self.fail(str(exc))
        self.save({"status": int(StatusCode.COMPLETED), "running_progress": 1.0,
                   "available_assets": result.available_assets, "size_bytes": result.size_bytes,
                   "statistics": result.statistics})

    # -- pending actions -------------------------------------------------------------------
    def cancel(self) -> None:
        if self.task.get("uuid") and self.node is not None:
            try:
                self.client(timeout=10.0).cancel(self.task["uuid"])
            except NodeError as exc:  # best effort, as WebODM
                log.info("Cancel on the node failed for task %s: %s", self.task["id"], exc)
        self.save({"status": int(StatusCode.CANCELED), "pending_action": None})

    def remove(self) -> None:
        if self.task.get("uuid") and self.node is not None:
            try:
                self.client(timeout=10.0).remove(self.task["uuid"])
            except NodeError as exc:  # best effort
                log.info("Remove on the node failed for task %s: %s", self.task["id"], exc)
        if not removal.finish_removal(self.task):
            raise LeaseLost()

    def restart(self) -> None:
        node = self.node
        if node is None and not self.task.get("auto_processing_node"):
            return self.fail(NO_NODE_FOR_RESTART)
        changes: dict = {}
        node_uuid = self.task.get("uuid")
        restarted_on_node = False
        if node_uuid and node is not None and self.task.get("node_committed"):
            client = self.client()
            try:
                info = client.task_info(node_uuid)
                if info.uuid in ("", node_uuid):
                    client.restart(node_uuid, self.task.get("options") or [])
                    restarted_on_node = True
            except NodeError as exc:
                log.info("Restart on the node failed for task %s, sending images again: %s",
                         self.task["id"], exc)
        if not restarted_on_node:
            options = [o for o in (self.task.get("options") or []) if o.get("name") != "rerun-from"]
            changes.update({"uuid": "", "node_committed": False, "upload_progress": 0.0,
                            "upload_resume_from": None, "options": options})
        output.clear(self.task["id"])
        changes.update({"status": None, "last_error": None, "pending_action": None, "processing_time": -1,
                        "running_progress": 0.0, **output.reset_fields()})
        self.save(changes)


class _Paused(NodeError):
    """The upload stopped at the deadline with its position recorded."""
