"""The scheduled function: the safety net under the work queue.

Every minute (EventBridge's shortest rate; locally every ALOFT_POLL_SECONDS) it
- refreshes every processing node's stored state (`/info`, `/options`), which the
  workers read instead of asking the nodes themselves;
- carries on the jobs the API handed over (store/work.py: project removals, user
  hand-overs) within its deadline;
- sends a message again for each active task whose expected step is overdue (a lost
  message, a crashed worker): one Query of the active-tasks index, and one write and
  one message per overdue task only, so a healthy task never gets two chains;
- once an hour, removes abandoned partial tasks and stale upload bodies (housekeeping.py).
It never advances a task itself: that is the worker's (steps/machine.py).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid as uuid_lib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import nodes as node_service
from . import housekeeping, queue, removal, webhooks
from .config import settings
from .store import nodes as node_store
from .store import tasks, work
from .store.dynamo import ConditionFailed

log = logging.getLogger("aloft.schedule")

SAFETY_MARGIN_SECONDS = 10.0
OVERDUE_SECONDS = 30.0  # a follow-up this late was lost (SQS delivers in well under a second)


@dataclass
class Cycle:
    owner: str
    deadline: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    stats: dict[str, int] = field(default_factory=dict)

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.stats[what] = self.stats.get(what, 0) + n


def run_cycle(context=None) -> dict:
    """One tick within the Lambda's remaining time; its counters."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 60.0
    cycle = Cycle(owner=uuid_lib.uuid4().hex,
                  deadline=time.monotonic() + max(1.0, remaining - SAFETY_MARGIN_SECONDS))
    nodes = node_service.refresh_all(node_store.list_all())
    jobs = work.list_all()
    if jobs:
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), settings().poll_workers)),
                                thread_name_prefix="job") as pool:
            for job in jobs:
                pool.submit(_run_job_safely, cycle, job)
    now = time.time()
    active = tasks.list_active()
    for task in active:
        if overdue(task, now):
            _send_again(cycle, task)
    resent = webhooks.send_due(has_time=lambda: cycle.seconds_left() > 0)
    if resent:
        cycle.stats["webhooks_sent"] = resent
    if housekeeping.claim_run():
        cleaned = housekeeping.run(has_time=lambda: cycle.seconds_left() > 0)
        cycle.stats.update({k: v for k, v in cleaned.items() if v})
    cycle.stats.update(nodes=len(nodes), active=len(active), jobs=len(jobs))
    return cycle.stats


def overdue(task: dict, now: float) -> bool:
    """Active, no worker on it, and its expected step (if any was ever sent) long past."""
    if tasks.is_leased(task):
        return False
    due = task.get("step_due")
    return not task.get("step_token") or due is None or due + OVERDUE_SECONDS < now


def _send_again(cycle: Cycle, task: dict) -> None:
    try:
        written = tasks.update(task, queue.wake_fields())  # a new token: any late copy of the old is stale
    except ConditionFailed:
        return  # it moved meanwhile: no longer overdue
    if queue.send(written):
        cycle.count("sent_again")
        log.info("task %s: its step was overdue, sent again", task["id"],
                 extra={"fact": {"task": task["id"], "step": "schedule", "outcome": "sent again"}})


def _run_job_safely(cycle: Cycle, job: dict) -> None:
    """Carry on a job the API handed over (removal.run_job) until it is done or the cycle
    ends, under a lease that lasts the cycle: overlapping cycles never run one job twice."""
    if cycle.seconds_left() <= 0:
        cycle.count("jobs_deferred")
        return
    if not work.acquire(job, cycle.owner, time.time() + cycle.seconds_left() + SAFETY_MARGIN_SECONDS):
        cycle.count("jobs_busy")
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
