"""Work the API hands to the poller: WorkTable, key (`queue`, `job`).

A route whose work would grow with user data (removing the tasks of a deleted
project, handing a deleted user's projects over) records a job, does what fits in a
small time budget and answers; every poll cycle Queries the jobs (one Query when there
are none) and carries each one on under a lease, within its own deadline, until it is
done. Jobs are idempotent, so a Lambda killed half way leaves a job the next cycle
finishes. A job is written in the same transaction as the change that calls for it.
"""
from __future__ import annotations

import time

from ..models import utcnow
from .dynamo import ConditionFailed, Table

_table = Table("work_table")
QUEUE = "poller"
REMOVE_PROJECT = "remove-project"
HAND_OVER = "hand-over"
REMOVE_GROUP = "remove-group"


def _key(job_id: str) -> dict:
    return {"queue": QUEUE, "job": job_id}


def key(job: dict) -> dict:
    return _key(job["job"])


def remove_project_id(project_id: int) -> str:
    return f"{REMOVE_PROJECT}#{project_id}"


def hand_over_id(from_user: int) -> str:
    return f"{HAND_OVER}#{from_user}"


def remove_group_id(group_id: int) -> str:
    return f"{REMOVE_GROUP}#{group_id}"


def put_request(job: dict) -> tuple[str, dict]:
    """Transaction part: record a job (a repeat overwrites it: jobs are idempotent)."""
    return ("Put", _table.put_request({"queue": QUEUE, "created_at": utcnow(), **job}))


def remove_project_request(project_id: int) -> tuple[str, dict]:
    return put_request({"job": remove_project_id(project_id), "kind": REMOVE_PROJECT,
                        "project_id": project_id})


def hand_over_request(from_user: int, to_user: int) -> tuple[str, dict]:
    return put_request({"job": hand_over_id(from_user), "kind": HAND_OVER,
                        "from_user": from_user, "to_user": to_user})


def remove_group_request(group_id: int) -> tuple[str, dict]:
    return put_request({"job": remove_group_id(group_id), "kind": REMOVE_GROUP, "group_id": group_id})


def delete_request(job_id: str) -> tuple[str, dict]:
    """Transaction part: forget a job (no condition: it may be gone already)."""
    return ("Delete", _table.delete_request(_key(job_id)))


def delete(job_id: str) -> None:
    _table.delete(_key(job_id))


def list_all() -> list[dict]:
    """Every job (one Query while they fit 1 MB: a job is a few hundred bytes)."""
    return list(_table.query("#q = :q", names={"#q": "queue"}, values={":q": QUEUE}, consistent=True))


def acquire(job: dict, owner: str, until: float) -> bool:
    """Take the job until `until` (epoch seconds); False if another poller holds it, or it is gone."""
    try:
        _table.update(key(job), set={"lease_owner": owner, "lease_until": until},
                      condition="attribute_exists(#j) AND (attribute_not_exists(#lu) OR #lu < :now)",
                      names={"#j": "job", "#lu": "lease_until"}, values={":now": time.time()})
        return True
    except ConditionFailed:
        return False


def release(job: dict, owner: str) -> None:
    try:
        _table.update(key(job), remove=("lease_owner", "lease_until"), condition="#lo = :lo",
                      names={"#lo": "lease_owner"}, values={":lo": owner})
    except ConditionFailed:
        pass  # done meanwhile (deleted), or no longer ours
