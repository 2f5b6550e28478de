"""Work messages: one SQS message per task step, the `worker` function per message.

A task that needs work carries a `step_token` (and `step_due`, when that step is
expected): the token of the one message that may advance it. Whoever makes a task
workable (the API on create, commit, cancel, restart, remove or a new node; a step
for its own follow-up; the schedule for an overdue task) writes a new token in the
same conditional write as its change, then sends a message carrying it. A worker
drops a message whose token is no longer the task's (a duplicate, a late or replayed
delivery, a chain replaced by a user's action), so a task never has two chains of
messages, and duplicates cost one conditional read. If a send is lost, the task's
`step_due` passes and the schedule sends again (poller.py).

`ALOFT_WORK_QUEUE` is the queue's URL on AWS (the template's Ref) or its name locally.
"""
from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass

from . import aws
from .config import settings

log = logging.getLogger(__name__)

MAX_DELAY_SECONDS = 900  # SQS's DelaySeconds limit


@dataclass(frozen=True)
class WorkMessage:
    project_id: int
    task_id: str
    token: str

    @property
    def task_key(self) -> dict:
        return {"project_id": self.project_id, "id": self.task_id}


def wake_fields(delay: float = 0.0) -> dict:
    """Task fields for a new chain: a fresh token, due `delay` seconds from now."""
    return {"step_token": uuid.uuid4().hex, "step_due": round(time.time() + delay, 3)}


CLEAR_FIELDS = ("step_token", "step_due")


@functools.lru_cache(maxsize=4)
def _queue_url(name_or_url: str) -> str:
    if name_or_url.startswith(("http://", "https://")):
        return name_or_url
    return aws.client("sqs").get_queue_url(QueueName=name_or_url)["QueueUrl"]


def queue_url() -> str:
    return _queue_url(settings().work_queue)


def send(task: dict, delay: float = 0.0) -> bool:
    """Send the message of the task's current token (as just written); False if SQS refused,
    which the schedule repairs once the step is overdue."""
    token = task.get("step_token")
    if not token:
        return False
    body = json.dumps({"project_id": task["project_id"], "task_id": task["id"], "token": token})
    try:
        aws.client("sqs").send_message(QueueUrl=queue_url(), MessageBody=body,
                                       DelaySeconds=int(min(MAX_DELAY_SECONDS, max(0.0, round(delay)))))
    except Exception:  # noqa: BLE001 - the task's step_due makes the schedule send it again
        log.exception("Could not send the work message of task %s", task["id"])
        return False
    return True


@dataclass(frozen=True)
class JobMessage:
    """A message for one job that is not a task step (`kind`: "export", chalicelib/exports.py, a
    backup included; "duplicate", chalicelib/duplicate.py; "webhook", one delivery attempt,
    chalicelib/webhooks.py)."""
    kind: str
    job: str


JOB_KINDS = ("export", "duplicate", "webhook")


def send_job(kind: str, job_id: str, delay: float = 0.0) -> bool:
    """Send a job's message (`delay` seconds from now); False if SQS refused (the job's owner
    sends it again later)."""
    try:
        aws.client("sqs").send_message(QueueUrl=queue_url(), MessageBody=json.dumps({"kind": kind, "job": job_id}),
                                       DelaySeconds=int(min(MAX_DELAY_SECONDS, max(0.0, round(delay)))))
    except Exception:  # noqa: BLE001
        log.exception("Could not send the message of %s job %s", kind, job_id)
        return False
    return True


def parse(body: str) -> WorkMessage | JobMessage:
    """A work message; ValueError for anything else (a poisoned message)."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("a work message is a JSON object")
    if "kind" in data:
        kind, job = data.get("kind"), data.get("job")
        if kind not in JOB_KINDS or not isinstance(job, str) or not job:
            raise ValueError("a job message names a known kind and its job")
        return JobMessage(kind, job)
    project_id, task_id, token = data.get("project_id"), data.get("task_id"), data.get("token")
    if not isinstance(project_id, int) or isinstance(project_id, bool) or not isinstance(task_id, str) \
            or not isinstance(token, str) or not token:
        raise ValueError("a work message names project_id, task_id and token")
    return WorkMessage(project_id, task_id, token)
