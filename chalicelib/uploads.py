"""Getting a task's images into S3: multipart files, Dropzone chunks, presigned PUTs.

On AWS a request body reaches Lambda only under 6 MB (about 4.7 MB of file once
base64-encoded), so WebODM's `upload/` requests are written to S3 by API Gateway
itself and turned into images by the ingest (ingest.py, which calls `store_form`);
large sets go straight to S3 with presigned PUTs; `commit` counts what arrived.
Errors are domain errors (InvalidInput); the API layer decides what HTTP says.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import storage
from .config import settings
from .errors import InvalidInput
from .forms import Form, UploadedFile
from .models import PresignedUpload, UploadSpec

DROPZONE_FIELDS = ("dzuuid", "dzchunkindex", "dztotalchunkcount")
MAX_CHUNKS = 100_000


def store_files(task_id: str, files: list[UploadedFile],
                existing: dict[str, storage.StoredObject] | None = None
                ) -> tuple[dict[str, int], tuple[int, int]]:
    """Store uploaded files as images; returns ({stored name: bytes}, (images, their bytes)),
    the totals as this request saw S3 (another request may upload to the task meanwhile)."""
    if existing is None:
        existing = {o.name: o for o in storage.list_images(task_id)}
    uploaded: dict[str, int] = {}
    for item in files:
        name, _ = storage.store_image(task_id, item.filename, item.stream, item.size, existing)
        uploaded[name] = item.size
    return uploaded, (len(existing), sum(o.size for o in existing.values()))


@dataclass(frozen=True)
class DropzoneChunk:
    upload_id: str
    index: int
    total: int
    offset: int


def dropzone_chunk(form: Form) -> DropzoneChunk | None:
    """The chunk a form carries: WebODM treats a request as a chunk only with exactly one
    file and all of `dzuuid`, `dzchunkindex` and `dztotalchunkcount`."""
    fields = form.fields
    if len(form.files) != 1 or not all(f in fields for f in DROPZONE_FIELDS):
        return None
    try:
        index = int(fields["dzchunkindex"])
        total = int(fields["dztotalchunkcount"])
        offset = int(fields.get("dzchunkbyteoffset") or 0)
    except (TypeError, ValueError):
        raise InvalidInput("chunkIndex is not an int") from None
    upload_id = str(fields["dzuuid"])
    if not storage.valid_upload_id(upload_id):
        raise InvalidInput("Invalid dzuuid")
    if not (1 <= total <= MAX_CHUNKS and 0 <= index < total and offset >= 0):
        raise InvalidInput("Invalid chunk index, count or offset")
    return DropzoneChunk(upload_id, index, total, offset)


def store_form(task_id: str, form: Form, existing: dict[str, storage.StoredObject]) -> dict[str, int]:
    """Store what one WebODM `upload/` request carried: its files, or one Dropzone chunk,
    which completes its file once every chunk is here. Returns {stored name: bytes}.

    Idempotent, so a body ingested twice (a run killed before it deleted the body)
    stores nothing twice: the same bytes under a taken name are the same image, and a
    finished Dropzone file is not assembled again.
    """
    if not form.files:
        raise InvalidInput("No files uploaded")
    chunk = dropzone_chunk(form)
    if chunk is None:
        uploaded, _ = store_files(task_id, form.files, existing)
        return uploaded
    state = storage.chunk_state(task_id, chunk.upload_id)
    if state and state.get("done"):
        return {}
    item = form.files[0]
    storage.store_chunk(task_id, chunk.upload_id, chunk.offset, item.stream, item.size, item.filename)
    try:
        name, size = storage.assemble_chunks(task_id, chunk.upload_id, chunk.total, existing)
    except storage.IncompleteUpload:
        return {}  # the other chunks are still to come
    return {name: size}


def presign(task_id: str, specs: list[UploadSpec]) -> list[PresignedUpload]:
    """One presigned PUT per file, under names no other image of the task has."""
    names = storage.reserve_upload_names(task_id, [s.name for s in specs])
    expires = settings().presign_seconds
    return [PresignedUpload(name=name, url=storage.presign_put(storage.image_key(task_id, name), spec.size),
                            method="PUT", headers={"Content-Length": str(spec.size)}, expires_in=expires)
            for name, spec in zip(names, specs)]


def image_stats(task_id: str) -> tuple[int, int]:
    """(number of images, their total bytes) as S3 holds them now."""
    images = storage.list_images(task_id)
    return len(images), sum(o.size for o in images)
