"""The schedule's hourly clean-up: WebODM's `cleanup_tasks` beat job and its like.

- Partial tasks older than ALOFT_PARTIAL_TASK_HOURS (72, WebODM's default) are removed with
  their S3 objects: an upload somebody abandoned. One Query of the sparse `partial-tasks`
  index reads only the expired ones.
- `upload/` bodies API Gateway stored under `incoming/` that nobody ingested within the same
  time (their task was removed while a body was on its way) are deleted.
At most one schedule run an hour does it: a conditional write on the counters table picks it.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from . import aws, removal
from .config import settings
from .s3stream import delete_keys, iter_objects
from .store import counters, tasks
from .store.dynamo import ConditionFailed

log = logging.getLogger("aloft.schedule")

INTERVAL_SECONDS = 3600
INCOMING_PREFIX = "incoming/"
# S3's LastModified is kept to the whole second: a body stored 0.9 s after the cutoff can read
# as before it. Bodies are only deleted once they are clearly older.
LAST_MODIFIED_GRACE = timedelta(seconds=1)


def claim_run(now: float | None = None) -> bool:
    """True for the one schedule run that does this hour's clean-up."""
    now = time.time() if now is None else now
    return counters.claim_after("housekeeping", now, now + INTERVAL_SECONDS)


def run(has_time: Callable[[], bool]) -> dict:
    """Expire abandoned partial tasks, then stale incoming bodies, while `has_time()`."""
    cutoff = datetime.now(timezone.utc) - timedelta(hours=settings().partial_task_hours)
    stats = {"partial_expired": 0, "incoming_deleted": 0}
    cutoff_text = cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # models.utcnow's form
    removed_some = True
    while removed_some and has_time():  # a batch with nothing to remove ends it: no spinning
        removed_some = False
        for key in tasks.partial_created_before(cutoff_text):
            if not has_time():
                break
            task = tasks.get(key["project_id"], key["id"])
            if task is not None and task.get("partial"):
                removal.remove_task(task)
                removed_some = True
                stats["partial_expired"] += 1
                log.info("task %s: partial since %s, removed", task["id"], task.get("created_at"),
                         extra={"fact": {"task": task["id"], "step": "expire", "outcome": "removed"}})
    if has_time():
        stale = (o["Key"] for o in iter_objects(aws.s3(), settings().bucket, INCOMING_PREFIX)
                 if o["LastModified"] < cutoff - LAST_MODIFIED_GRACE)
        stats["incoming_deleted"] = delete_keys(aws.s3(), settings().bucket, stale)
    return stats
