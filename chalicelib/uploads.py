"""Getting a task's images into S3: multipart files, Dropzone chunks, presigned PUTs.

API Gateway caps a request at 10 MB (about 4.5 MB of raw file through Lambda), so
large sets go straight to S3 with presigned URLs and `commit` counts what arrived.
"""
from __future__ import annotations

from . import storage
from .api.common import Body, UploadedFile
from .config import settings
from .errors import bad_request
from .models import PresignedUpload, UploadSpec

DROPZONE_FIELDS = ("dzuuid", "dzchunkindex", "dztotalchunkcount")
MAX_CHUNKS = 100_000


def store_files(task_id: str, files: list[UploadedFile]) -> tuple[dict[str, int], tuple[int, int]]:
    """Store uploaded files as images; returns ({stored name: bytes}, (images, their bytes)),
    the totals as this request saw S3 (another request may upload to the task meanwhile)."""
    existing = {o.name: o for o in storage.list_images(task_id)}
    uploaded: dict[str, int] = {}
    for item in files:
        name, _ = storage.store_image(task_id, item.filename, item.stream, item.size, existing)
        uploaded[name] = item.size
    return uploaded, (len(existing), sum(o.size for o in existing.values()))


def is_dropzone_chunk(body: Body) -> bool:
    """WebODM treats a request as a chunk only with one file and all dz* fields."""
    return len(body.files) == 1 and all(f in body.fields for f in DROPZONE_FIELDS)


def store_dropzone_chunk(task_id: str, body: Body) -> dict[str, int]:
    """Keep one chunk; the final one assembles the file ({} until then)."""
    try:
        index = int(body.fields["dzchunkindex"])
        total = int(body.fields["dztotalchunkcount"])
        offset = int(body.fields.get("dzchunkbyteoffset") or 0)
    except (TypeError, ValueError):
        raise bad_request("chunkIndex is not an int") from None
    upload_id = str(body.fields["dzuuid"])
    if not storage.valid_upload_id(upload_id):
        raise bad_request("Invalid dzuuid")
    if not (1 <= total <= MAX_CHUNKS and 0 <= index < total and offset >= 0):
        raise bad_request("Invalid chunk index, count or offset")
    item = body.files[0]
    storage.store_chunk(task_id, upload_id, index, offset, item.stream, item.size)
    if index + 1 < total:
        return {}
    existing = {o.name: o for o in storage.list_images(task_id)}
    try:
        name, size = storage.assemble_chunks(task_id, upload_id, total, item.filename, existing)
    except storage.IncompleteUpload as exc:
        raise bad_request(str(exc)) from None
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
