"""Uploads into a partial task: WebODM's `upload/` and `commit/`, and presigned PUTs.

On AWS, `POST .../upload/` never runs in Lambda (a request body reaches Lambda only
under 6 MB, about 4.7 MB of file once base64-encoded, and real drone images are
larger): API Gateway checks the caller with the upload authorizer and writes the
body, as sent, to S3 (infra/resources.json). This module documents that route,
and serves the Lambda routes of the flow: `presign/` (one presigned S3 PUT per
file, for files of any size) and `commit/` (ingest what fits in the request's
time, hand the rest to the poller, count the images).
"""
from __future__ import annotations

from chalice import Blueprint

from .. import ingest, limits, queue, storage, uploads
from ..apidoc import INVALID, doc, gateway_route
from ..config import settings
from ..errors import InvalidInput, NotFound, validate
from ..models import Detail, DropzoneChunk, PresignRequest, PresignResponse, Success, TaskOut
from ..store import tasks
from .common import BODY_CONTENT_TYPES, caller_task, parse_body, respond
from .tasks import task_json

bp = Blueprint(__name__)
ONE = "/api/projects/{project_id}/tasks/{task_id}"
UPLOAD = ONE + "/upload"
# commit ingests while more than this is left of its Lambda time: the last body
# (at most 10 MB) and the count and write that follow must still fit.
COMMIT_RESERVE_MS = 12_000

gateway_route(
    UPLOAD, "POST", "upload_images_post",
    "Upload images (WebODM's multipart files or Dropzone chunks), stored by API Gateway",
    {200: Success, 403: Detail, 404: Detail, 413: "text"}, form_body=DropzoneChunk, files="images",
    tags=("uploads",),
    description=(
        f"Served by API Gateway itself: the request body (at most {limits.API_GATEWAY_MAX_BODY_BYTES:,} bytes, "
        "API Gateway's quota; over it a 413 with a text body) is written to S3 as sent, after the "
        "upload authorizer checked the caller's change right on the task. The answer is "
        '`{"success": true}` without WebODM\'s `uploaded` map: the files are read when the task is '
        "committed (`commit/`), so `images_count` changes then. One file per request, or Dropzone chunks "
        "(`dzuuid`, `dzchunkindex`, `dztotalchunkcount`, `dzchunkbyteoffset`) of up to 8,000,000 bytes as "
        "WebODM's web UI sends them. Not multipart: 403 with a detail. For files of any size use `presign/`."))


@bp.route(ONE + "/presign", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Presigned S3 PUT URLs for the task's images (files of any size)", {200: PresignResponse},
     body=PresignRequest, tags=("uploads",),
     description=("One short-lived URL per file (`name`, exact `size` in bytes, at most 5 GB: one S3 PUT); "
                  "PUT the bytes to it with the given headers, then `commit/`. A name already taken gets a "
                  "suffix (`a.jpg` -> `a_1.jpg`). The bytes never pass through API Gateway or Lambda. "
                  "404 when the deployment switched presigned uploads off (`ALOFT_PRESIGNED_UPLOADS=0`)."))
def presign_uploads(project_id, task_id):
    """Presigned PUTs straight to S3: the path for real datasets (no size ceiling per request)."""
    if not settings().presigned_uploads:
        raise NotFound()  # switched off (ALOFT_PRESIGNED_UPLOADS=0): a WebODM server's unknown route
    request = bp.current_request
    _, _, task = caller_task(request, project_id, task_id)
    spec = validate(PresignRequest, parse_body(request).fields)
    return respond(PresignResponse(success=True, uploads=uploads.presign(task["id"], spec.files))
                   .model_dump(mode="json"))


@bp.route(ONE + "/commit", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Commit a partial task", {200: TaskOut, 400: INVALID}, tags=("uploads",),
     description=("Ingests the bodies sent to `upload/` while this request has time, and leaves the rest to "
                  "the poller, which finishes them before the task goes to a node; `images_count` is exact "
                  "when everything was ingested (small uploads always are)."))
def commit_task(project_id, task_id):
    """Finish a partial task: ingest uploads in time, count the images in S3, hand it to the poller."""
    _, project, task = caller_task(bp.current_request, project_id, task_id)
    context = bp.lambda_context
    result = ingest.ingest_leased(task, has_time=lambda: context is None
                                  or context.get_remaining_time_in_millis() > COMMIT_RESERVE_MS)
    pending = result.remaining if result is not None else storage.has_incoming(task["id"])
    count, size = uploads.image_stats(task["id"])
    if count < 1 and not pending:
        raise InvalidInput("You need to upload at least 1 file before commit")
    updated = tasks.mutate(project["id"], task["id"], lambda _: {
        "partial": False, "images_count": count, "size_bytes": size, "ingest_pending": pending or None,
        **queue.wake_fields()})
    if updated is None or tasks.is_hidden(updated):
        raise NotFound()
    if tasks.needs_poller(updated):
        queue.send(updated)  # its worker starts at once: ingest what is left, then the node
    return respond(task_json(updated))
