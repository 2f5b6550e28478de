"""Upload bodies that API Gateway stored in S3 become the task's images.

On AWS, `POST .../upload/` never reaches Lambda: API Gateway's S3 integration
writes each request body, as sent, to `incoming/<task id>/<epoch ms>/<request id>` (see the
integration in infra/resources.json). `commit` ingests what fits its time budget
and the poller the rest, always before it counts images or sends the task to a
node. Each body is read from S3 in pieces, parsed as WebODM's upload view parses
it (files, or one Dropzone chunk), stored, and only then deleted: a run killed
half way leaves the body to be ingested again, which stores nothing twice.
The caller holds the task's lease, so one ingest runs per task at a time.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Callable

from . import storage, uploads
from .config import settings
from .errors import InvalidInput
from .forms import is_multipart, parse_multipart
from .store import tasks

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    bodies: int = 0
    stored: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    remaining: bool = False


def ingest(task_id: str, has_time: Callable[[], bool] = lambda: True) -> IngestResult:
    """Ingest the task's stored upload bodies in arrival order while `has_time()`."""
    result = IngestResult()
    bodies = storage.list_incoming(task_id)
    if not bodies:
        return result
    existing = {o.name: o for o in storage.list_images(task_id)}
    for body in bodies:
        if not has_time():
            result.remaining = True
            return result
        try:
            result.stored.update(_ingest_one(task_id, body.key, existing))
        except InvalidInput as refusal:
            # WebODM would have answered this request with a 400; API Gateway already
            # answered it, so it is logged and dropped, and commit counts what is there.
            log.warning("Task %s: upload body %s refused: %s", task_id, body.key, refusal)
            result.refused += 1
        storage.delete_object(body.key)
        result.bodies += 1
    return result


def ingest_leased(task: dict, has_time: Callable[[], bool]) -> IngestResult | None:
    """Ingest under the task's lease; None when someone else holds it (a poller's step or
    another commit), who then ingests instead."""
    owner = "commit-" + uuid.uuid4().hex
    leased = tasks.acquire_lease(task, owner, settings().lease_seconds)
    if leased is None:
        return None
    try:
        return ingest(task["id"], has_time)
    finally:
        tasks.release_lease(leased, owner)


def _ingest_one(task_id: str, key: str, existing: dict) -> dict[str, int]:
    content_type, pieces = storage.read_incoming(key)
    if not is_multipart(content_type):
        raise InvalidInput(f'Unsupported media type "{content_type}" in request.')
    form = parse_multipart(content_type, pieces)
    return uploads.store_form(task_id, form, existing)
