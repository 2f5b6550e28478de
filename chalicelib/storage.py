"""S3 layout and operations for task images, upload chunks and results.

Everything of a task lives under `tasks/<task id>/` (moving a task between projects
moves nothing). Upload request bodies that API Gateway wrote straight to S3 wait
under `incoming/<task id>/<epoch ms>/<request id>` until they are ingested; Dropzone chunks
wait under `chunks/<task id>/<dzuuid>/` (expired by a bucket lifecycle rule if
abandoned). Downloads are presigned GETs: bytes never pass through Lambda.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from . import aws
from .config import settings
from .paths import safe_filename
from .s3stream import delete_keys, iter_objects

SINGLE_PUT_LIMIT = 5 * 1024**3


def _bucket() -> str:
    return settings().bucket


def task_prefix(task_id: str) -> str:
    return f"tasks/{task_id}/"


def images_prefix(task_id: str) -> str:
    return f"{task_prefix(task_id)}images/"


def image_key(task_id: str, name: str) -> str:
    return images_prefix(task_id) + name


def _chunks_prefix(task_id: str, upload_id: str) -> str:
    return f"chunks/{task_id}/{upload_id}/"


def _numbered(name: str, n: int) -> str:
    stem, ext = os.path.splitext(name)
    return f"{stem}_{n}{ext}"


def _free_name(base: str, taken) -> str:
    """`base`, or `base_1`, `base_2`... : the first one not in `taken`."""
    name, n = base, 0
    while name in taken:
        n += 1
        name = _numbered(base, n)
    return name


def resized_prefix(task_id: str) -> str:
    """Smaller copies of the images (`resize_to`); the originals stay under images/."""
    return f"{task_prefix(task_id)}resized/"


@dataclass
class StoredObject:
    name: str
    size: int
    etag: str
    key: str = ""


def list_images(task_id: str) -> list[StoredObject]:
    return _list_named(images_prefix(task_id))


def list_resized(task_id: str) -> list[StoredObject]:
    return _list_named(resized_prefix(task_id))


def images_for_node(task: dict) -> list[StoredObject]:
    """What the relay sends: the images, each replaced by its resized copy when there is one."""
    images = list_images(task["id"])
    if int(task.get("resize_to") or -1) <= 0:
        return images
    resized = {o.name: o for o in list_resized(task["id"]) if not o.name.endswith(".unchanged")}
    return [resized.get(image.name, image) for image in images]


def _list_named(prefix: str) -> list[StoredObject]:
    return [StoredObject(o["Key"][len(prefix):], o["Size"], o["ETag"].strip('"'), o["Key"])
            for o in _list(prefix)]


def _list(prefix: str) -> Iterator[dict]:
    return iter_objects(aws.s3(), _bucket(), prefix)


def _md5(stream: BinaryIO) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    stream.seek(0)
    for block in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(block)
    stream.seek(0)
    return digest.hexdigest()


def store_image(task_id: str, filename: str, stream: BinaryIO, size: int,
                existing: dict[str, StoredObject]) -> tuple[str, bool]:
    """Store one image under a name no other image of the task has.

    Re-sending the same bytes under the same name is a no-op (a retried request),
    different bytes under a taken name get `name_1.ext`, `name_2.ext`... The write is
    conditional (If-None-Match), so concurrent uploads cannot overwrite each other.
    Returns (stored name, whether new bytes were written). `existing` is updated.
    """
    from botocore.exceptions import ClientError

    base = safe_filename(filename)
    checksum = _md5(stream)
    for attempt in range(0, 1000):
        name = base if attempt == 0 else _numbered(base, attempt)
        found = existing.get(name)
        if found is not None:
            if found.etag == checksum and found.size == size:
                return name, False
            continue
        stream.seek(0)
        try:
            aws.s3().put_object(Bucket=_bucket(), Key=image_key(task_id, name), Body=stream,
                                ContentLength=size, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                head = aws.s3().head_object(Bucket=_bucket(), Key=image_key(task_id, name))
                existing[name] = StoredObject(name, head["ContentLength"], head["ETag"].strip('"'))
                if existing[name].etag == checksum and existing[name].size == size:
                    return name, False
                continue
            raise
        existing[name] = StoredObject(name, size, checksum)
        return name, True
    raise RuntimeError("could not find a free name")  # 1000 distinct files of one name


def reserve_upload_names(task_id: str, names: list[str]) -> list[str]:
    """Distinct safe names for presigned uploads, avoiding the task's existing images."""
    taken = {o.name for o in list_images(task_id)}
    chosen = []
    for raw in names:
        name = _free_name(safe_filename(raw), taken)
        taken.add(name)
        chosen.append(name)
    return chosen


def presign_put(key: str, size: int) -> str:
    """A short-lived URL for one PUT of exactly `size` bytes (Content-Length is signed)."""
    return aws.s3().generate_presigned_url(
        "put_object", Params={"Bucket": _bucket(), "Key": key, "ContentLength": size},
        ExpiresIn=settings().presign_seconds)


def presign_get(key: str, disposition: str, content_type: str) -> str:
    return aws.s3().generate_presigned_url(
        "get_object", Params={"Bucket": _bucket(), "Key": key,
                              "ResponseContentDisposition": disposition,
                              "ResponseContentType": content_type},
        ExpiresIn=settings().presign_seconds)


def object_size(key: str) -> int | None:
    """Size of an object, None if it does not exist."""
    from botocore.exceptions import ClientError

    try:
        return aws.s3().head_object(Bucket=_bucket(), Key=key)["ContentLength"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def put_bytes(key: str, data: bytes, metadata: dict | None = None) -> None:
    aws.s3().put_object(Bucket=_bucket(), Key=key, Body=data, Metadata=metadata or {})


def object_metadata(key: str) -> dict | None:
    """The user metadata of an object, None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        return aws.s3().head_object(Bucket=_bucket(), Key=key).get("Metadata", {})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def read_object(key: str) -> bytes:
    """An object's bytes (for objects known to be small)."""
    return aws.s3().get_object(Bucket=_bucket(), Key=key)["Body"].read()


def open_object(key: str):
    """A streaming body (with .read(n)) and its size."""
    reply = aws.s3().get_object(Bucket=_bucket(), Key=key)
    return reply["Body"], reply["ContentLength"]


def delete_prefix(prefix: str) -> int:
    """Delete every object under a prefix (1000 per request); returns how many."""
    return delete_keys(aws.s3(), _bucket(), (obj["Key"] for obj in _list(prefix)))


def delete_task_objects(task_id: str) -> None:
    delete_prefix(task_prefix(task_id))
    delete_prefix(f"chunks/{task_id}/")
    delete_prefix(incoming_prefix(task_id))


def delete_object(key: str) -> None:
    aws.s3().delete_object(Bucket=_bucket(), Key=key)


# ------------------------------------------------------------------ incoming upload bodies

def incoming_prefix(task_id: str) -> str:
    """Where API Gateway's S3 integration stores `upload/` bodies (infra/resources.json)."""
    return f"incoming/{task_id}/"


@dataclass
class IncomingBody:
    key: str
    size: int


def list_incoming(task_id: str) -> list[IncomingBody]:
    """Stored upload bodies in the order API Gateway received them: their keys are
    `incoming/<task>/<request time, epoch ms>/<request id>`, and S3 lists keys sorted."""
    return [IncomingBody(obj["Key"], obj["Size"]) for obj in _list(incoming_prefix(task_id))]


def has_incoming(task_id: str) -> bool:
    reply = aws.s3().list_objects_v2(Bucket=_bucket(), Prefix=incoming_prefix(task_id), MaxKeys=1)
    return bool(reply.get("KeyCount") or reply.get("Contents"))


def read_incoming(key: str, piece_bytes: int = 1024 * 1024):
    """(the request's content type, an iterator of the body's pieces): streamed, never
    held whole twice. The integration keeps the request's Content-Type (with its multipart
    boundary) as metadata: the object itself is stored as opaque bytes."""
    reply = aws.s3().get_object(Bucket=_bucket(), Key=key)
    body = reply["Body"]
    content_type = (reply.get("Metadata") or {}).get("content-type", "")
    return content_type, iter(lambda: body.read(piece_bytes), b"")


# ------------------------------------------------------------------ Dropzone chunks

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def valid_upload_id(upload_id: str) -> bool:
    return bool(_UPLOAD_ID.match(upload_id or ""))


def store_chunk(task_id: str, upload_id: str, offset: int, stream: BinaryIO, size: int, filename: str) -> None:
    """Keep one chunk under its byte offset (a chunk sent again replaces itself), with the
    file name it was sent under: the last chunk's name becomes the image's, as in WebODM."""
    from urllib.parse import quote

    stream.seek(0)
    aws.s3().put_object(Bucket=_bucket(), Key=f"{_chunks_prefix(task_id, upload_id)}{offset:015d}",
                        Body=stream, ContentLength=size, Metadata={"filename": quote(filename)})


def _chunk_filename(key: str) -> str:
    from urllib.parse import unquote

    head = aws.s3().head_object(Bucket=_bucket(), Key=key)
    return unquote((head.get("Metadata") or {}).get("filename", ""))


class IncompleteUpload(Exception):
    """Not every chunk of a Dropzone upload is here (yet)."""


def _chunk_state_key(task_id: str, upload_id: str) -> str:
    return _chunks_prefix(task_id, upload_id) + "state.json"


def chunk_state(task_id: str, upload_id: str) -> dict | None:
    """The assembly record of a Dropzone upload: {"name", "done", "size"}, or None."""
    import json

    from botocore.exceptions import ClientError

    try:
        body = aws.s3().get_object(Bucket=_bucket(), Key=_chunk_state_key(task_id, upload_id))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return json.loads(body)


def _put_chunk_state(task_id: str, upload_id: str, state: dict) -> None:
    import json

    aws.s3().put_object(Bucket=_bucket(), Key=_chunk_state_key(task_id, upload_id),
                        Body=json.dumps(state).encode(), ContentType="application/json")


def assemble_chunks(task_id: str, upload_id: str, total_chunks: int,
                    existing: dict[str, StoredObject]) -> tuple[str, int]:
    """Join the chunks (in byte-offset order) into one image, streamed; returns (name, size).
    The image takes the name the last chunk was sent under (WebODM's rule), whichever
    chunk arrived last.

    Idempotent: the image's name is recorded before it is written and the upload is
    marked done after, so a run killed half way, or run again, makes the same one
    image (never a `name_1` copy). IncompleteUpload while chunks are missing.
    """
    from .s3stream import S3MultipartWriter

    state = chunk_state(task_id, upload_id)
    if state and state.get("done"):
        return state["name"], int(state.get("size") or 0)
    prefix = _chunks_prefix(task_id, upload_id)
    parts = sorted((o for o in _list(prefix) if o["Key"][len(prefix):].isdigit()), key=lambda o: o["Key"])
    expected = 0
    for part in parts:
        if int(part["Key"][len(prefix):]) != expected:
            raise IncompleteUpload("Chunks are missing or overlap")
        expected += part["Size"]
    if len(parts) != total_chunks:
        raise IncompleteUpload(f"Expected {total_chunks} chunks, received {len(parts)}")
    name = state["name"] if state else _free_name(safe_filename(_chunk_filename(parts[-1]["Key"])), existing)
    if not state:
        _put_chunk_state(task_id, upload_id, {"name": name, "done": False})
    client = aws.s3()
    with S3MultipartWriter(client, _bucket(), image_key(task_id, name)) as writer:
        for part in parts:
            body = client.get_object(Bucket=_bucket(), Key=part["Key"])["Body"]
            for block in iter(lambda: body.read(1024 * 1024), b""):
                writer.write(block)
    _put_chunk_state(task_id, upload_id, {"name": name, "done": True, "size": expected})
    for part in parts:
        delete_object(part["Key"])
    existing[name] = StoredObject(name, expected, "")
    return name, expected
