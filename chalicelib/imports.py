"""Importing processed results as a task: WebODM's `TaskAssetsImport` and external import.

Where the zip comes from (the task's `import_source`, never shown by the API):

- one uploaded file (at most what one Lambda event carries): written by the route straight to
  the task's `all.zip` key, no source left to fetch;
- Dropzone chunks (`dz*` fields): kept under `chunks/import-<project>/<dzuuid>/<offset>`;
  the last chunk creates the task, whose worker joins them into `all.zip`;
- a presigned PUT (`import/presign`, for zips of any size up to 5 GB): the bytes go straight
  to S3 under `chunks/import-presign-<project>/<upload id>`; `import` with `upload=<id>`
  creates the task, whose worker copies the object server-side into `all.zip`;
- a `url` (WebODM's `import_url`): downloaded by the worker only (chalicelib/netguard.py);
- the external three-step import: files under `chunks/external-<project>/<uuid>/` (a chunked
  file stays as its chunks, with a `<name>.chunks` record: no route ever joins large files),
  checked at commit with ranged reads and packed by the worker into an `all.zip` with
  WebODM's asset paths.

Every staging prefix lives under `chunks/`, which the bucket's lifecycle rule expires after
3 days, so an abandoned upload costs nothing for long. A staging object becomes a task once:
a conditional `claim` object (If-None-Match) names the task it became.

The worker's part (`fetch_source`, `unpack_backup`, `finish`) is called by
chalicelib/steps/imports.py under the task's lease; each part is safe to run again.
"""
from __future__ import annotations

import bisect
import io
import json
import logging
import posixpath
import re
import uuid as uuid_lib
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, Callable

from . import assets, aws, storage
from .config import settings
from .errors import InvalidInput
from .paths import safe_filename
from .s3stream import S3MultipartWriter, S3RangeReader, iter_objects

log = logging.getLogger(__name__)

DEFAULT_NAME = "Imported Task"
FILE_IMPORT_URL = "file://all.zip"
EXTERNAL_IMPORT_URL = "file://external"
ZIP_CONTENT_TYPE = "application/zip"
MAX_PRESIGNED_BYTES = storage.SINGLE_PUT_LIMIT
MAX_JSON_BYTES = 16 * 1024 * 1024
BACKUP_JSON = "data/backup.json"

# WebODM's messages (app/api/tasks.py TaskAssetsImport, app/api/external_import.py).
NEED_ONE_FILE = "Cannot create task, you need to upload 1 file"
URL_OR_FILE = "Cannot create task, either specify a URL or upload 1 file."
INVALID_UUID = "Invalid uuid"
INVALID_FILE_TYPE = "Invalid file type"
EXTENSION_MISMATCH = "Invalid file type (extension mismatch)"
URL_PATTERN = re.compile(r"^https?://.+", re.IGNORECASE)


def invalid_url(url: str) -> str:
    return f"Invalid URL. Did you mean http://{url} ?"


def _bucket() -> str:
    return settings().bucket


def _exists(key: str) -> bool:
    return storage.object_size(key) is not None


# ------------------------------------------------------------------ staging keys

def chunk_namespace(project_id: int) -> str:
    """The `storage.store_chunk` namespace of a project's import chunks."""
    return f"import-{project_id}"


def chunks_prefix(project_id: int, dzuuid: str) -> str:
    return f"chunks/{chunk_namespace(project_id)}/{dzuuid}/"


def presigned_key(project_id: int, upload_id: str) -> str:
    return f"chunks/import-presign-{project_id}/{upload_id}"


def external_prefix(project_id: int, temp_id: str) -> str:
    return f"chunks/external-{project_id}/{temp_id}/"


def _claim_key(staging: str) -> str:
    return staging.rstrip("/") + ".claim"


def claim(staging: str, task_id: str) -> str:
    """Make `staging` (a key or prefix) belong to `task_id`, once: the id of the task it
    belongs to (another one if an earlier request claimed it first)."""
    from botocore.exceptions import ClientError

    key = _claim_key(staging)
    try:
        aws.s3().put_object(Bucket=_bucket(), Key=key, Body=task_id.encode(), IfNoneMatch="*")
        return task_id
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise
    return storage.read_object(key).decode()


# ------------------------------------------------------------------ route side

@dataclass(frozen=True)
class PresignedImport:
    upload: str
    url: str
    method: str
    headers: dict
    expires_in: int


def presign(project_id: int, size: int) -> PresignedImport:
    upload_id = uuid_lib.uuid4().hex
    key = presigned_key(project_id, upload_id)
    return PresignedImport(upload=upload_id, url=storage.presign_put(key, size), method="PUT",
                           headers={"Content-Length": str(size)}, expires_in=settings().presign_seconds)


def valid_upload_id(upload_id) -> bool:
    return isinstance(upload_id, str) and bool(re.fullmatch(r"[0-9a-f]{32}", upload_id))


def chunks_complete(prefix: str, total: int) -> bool:
    """Every chunk is here: `total` objects whose offsets follow each other from 0."""
    expected, count = 0, 0
    for obj in iter_objects(aws.s3(), _bucket(), prefix):
        name = obj["Key"][len(prefix):]
        if not name.isdigit():
            continue
        if int(name) != expected:
            return False
        expected += obj["Size"]
        count += 1
    return count == total


def store_zip(task_id: str, stream: BinaryIO, size: int) -> None:
    """One uploaded file (small: it came in one request) becomes the task's all.zip."""
    stream.seek(0)
    aws.s3().put_object(Bucket=_bucket(), Key=storage.task_prefix(task_id) + "all.zip", Body=stream,
                        ContentLength=size, ContentType=ZIP_CONTENT_TYPE)


# ------------------------------------------------------------------ external import (route side)

# WebODM's external import: the form field names the asset; the stored name and the
# extensions it accepts (`.tiff` counts as `.tif`).
EXTERNAL_ASSETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "orthophoto": ("orthophoto.tif", (".tif",)),
    "dsm": ("dsm.tif", (".tif",)),
    "dtm": ("dtm.tif", (".tif",)),
    "pointcloud": ("georeferenced_model", (".laz", ".las")),
    "texturedmodel": ("textured_model.glb", (".glb",)),
}
# Where each stored file goes in the task's assets (WebODM's ASSETS_MAP).
EXTERNAL_PATHS = {
    "orthophoto.tif": "odm_orthophoto/odm_orthophoto.tif",
    "dsm.tif": "odm_dem/dsm.tif",
    "dtm.tif": "odm_dem/dtm.tif",
    "georeferenced_model.laz": "odm_georeferencing/odm_georeferenced_model.laz",
    "georeferenced_model.las": "odm_georeferencing/odm_georeferenced_model.las",
    "textured_model.glb": "odm_texturing/odm_textured_model_geo.glb",
}
_MARKER = ".init"


def external_init(project_id: int) -> str:
    temp_id = str(uuid_lib.uuid4())
    storage.put_bytes(external_prefix(project_id, temp_id) + _MARKER, b"")
    return temp_id


def external_folder(project_id: int, temp_id) -> str:
    """The temporary folder of an `init`; InvalidInput("Invalid uuid") when there is none."""
    try:
        parsed = uuid_lib.UUID(str(temp_id))
    except (TypeError, ValueError):
        raise InvalidInput(INVALID_UUID) from None
    if str(parsed) != str(temp_id).lower():
        raise InvalidInput(INVALID_UUID)
    prefix = external_prefix(project_id, str(parsed))
    if not _exists(prefix + _MARKER):
        raise InvalidInput(INVALID_UUID)
    return prefix


def external_asset_name(field: str, filename: str) -> str:
    """The stored name of a file sent under `field`, or InvalidInput (WebODM's messages)."""
    spec = EXTERNAL_ASSETS.get(field)
    if spec is None:
        raise InvalidInput(INVALID_FILE_TYPE)
    base, extensions = spec
    ext = posixpath.splitext(filename or "")[1].lower()
    if ext == ".tiff":
        ext = ".tif"
    if ext not in extensions:
        raise InvalidInput(EXTENSION_MISMATCH)
    return base + ext if field == "pointcloud" else base


def external_store(prefix: str, name: str, stream: BinaryIO, size: int) -> None:
    """A whole file (one request) becomes the folder's `name`, replacing any earlier one."""
    stream.seek(0)
    aws.s3().put_object(Bucket=_bucket(), Key=prefix + name, Body=stream, ContentLength=size)
    storage.delete_object(prefix + name + _JOINED)
    _drop_other_pointcloud(prefix, name)


def _drop_other_pointcloud(prefix: str, name: str) -> None:
    if name.startswith("georeferenced_model."):
        other = "georeferenced_model.las" if name.endswith(".laz") else "georeferenced_model.laz"
        storage.delete_object(prefix + other)
        storage.delete_object(prefix + other + _JOINED)


def external_chunk_namespace(prefix: str, field: str) -> str:
    """`storage.store_chunk` namespace of one asset's chunks inside the temporary folder."""
    return prefix.removeprefix("chunks/") + "parts/" + field


_JOINED = ".chunks"  # `<name>.chunks`: the asset is these chunks, read in order (never joined in a route)


def external_chunks_done(prefix: str, field: str, dzuuid: str, total: int, name: str) -> bool:
    """Once every chunk is here, the asset `name` is those chunks (a record of where they are;
    nothing is copied in the request); False before."""
    parts = f"chunks/{external_chunk_namespace(prefix, field)}/{dzuuid}/"
    if not chunks_complete(parts, total):
        return False
    storage.put_bytes(prefix + name + _JOINED, json.dumps({"parts": parts}).encode())
    storage.delete_object(prefix + name)
    _drop_other_pointcloud(prefix, name)
    return True


Part = tuple[str, int]  # (key, bytes)


def _chunk_parts(parts_prefix: str) -> list[Part]:
    found = [(o["Key"], o["Size"]) for o in iter_objects(aws.s3(), _bucket(), parts_prefix)
             if o["Key"][len(parts_prefix):].isdigit()]
    return sorted(found, key=lambda p: int(p[0][len(parts_prefix):]))


def external_files(prefix: str) -> dict[str, list[Part]]:
    """{stored name: the objects holding its bytes, in order} of a temporary folder's assets."""
    found: dict[str, list[Part]] = {}
    for obj in iter_objects(aws.s3(), _bucket(), prefix):
        name = obj["Key"][len(prefix):]
        if name in EXTERNAL_PATHS:
            found[name] = [(obj["Key"], obj["Size"])]
        elif name.endswith(_JOINED) and name[:-len(_JOINED)] in EXTERNAL_PATHS:
            record = json.loads(storage.read_object(obj["Key"]))
            found[name[:-len(_JOINED)]] = _chunk_parts(record["parts"])
    return found


class JoinedReader(io.RawIOBase):
    """A seekable read-only file over several S3 objects one after the other (an asset's
    chunks), through ranged GETs: a header is read without fetching the whole file."""

    def __init__(self, parts: list[Part], block_size: int = 256 * 1024):
        super().__init__()
        self._parts = parts
        self._starts = []
        offset = 0
        for _, size in parts:
            self._starts.append(offset)
            offset += size
        self.size = offset
        self._pos = 0
        self._readers: dict[int, S3RangeReader] = {}
        self._block = block_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        out = memoryview(buffer).cast("B")
        if self._pos >= self.size or not len(out):
            return 0
        index = bisect.bisect_right(self._starts, self._pos) - 1
        reader = self._readers.get(index)
        if reader is None:
            key, size = self._parts[index]
            reader = self._readers[index] = S3RangeReader(aws.s3(), _bucket(), key, size=size,
                                                          block_size=self._block, readahead=False)
        reader.seek(self._pos - self._starts[index])
        n = reader.readinto(out[:min(len(out), self._parts[index][1] - (self._pos - self._starts[index]))])
        self._pos += n
        return n

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
        super().close()


def _head_bytes(parts: list[Part], n: int) -> bytes:
    with JoinedReader(parts, block_size=max(n, 1)) as reader:
        return reader.read(n)


def external_check(prefix: str) -> list[str]:
    """WebODM's commit checks: [] when the folder can become a task, else the problems."""
    files = external_files(prefix)
    if not files:
        return ["No assets uploaded"]
    problems = []
    for name, parts in files.items():
        if name.endswith(".tif"):
            problems += _raster_problems(parts, name)
        elif name.startswith("georeferenced_model."):
            if _head_bytes(parts, 4) != b"LASF":
                problems.append(f"{name} is not a valid point cloud (LAS/LAZ)")
        elif name.endswith(".glb"):
            if _head_bytes(parts, 4) != b"glTF":
                problems.append(f"{name} is not a valid GLB file")
    return problems


def _raster_problems(parts: list[Part], name: str) -> list[str]:
    """Reads the TIFF's header with ranged GETs (rasterio's `opener` over the S3 objects): a
    GeoTIFF of any size is checked without fetching it."""
    import rasterio

    def opener(path, mode="rb"):
        return io.BufferedReader(JoinedReader(parts))

    try:
        with rasterio.open(name, opener=opener) as dataset:
            crs, bands = dataset.crs, dataset.count
    except Exception:  # noqa: BLE001 - anything GDAL cannot open is not a GeoTIFF
        log.info("external import: %s is not readable as a GeoTIFF", name, exc_info=True)
        return [f"{name} is not a valid GeoTIFF"]
    problems = []
    if crs is None:
        problems.append(f"{name} is not georeferenced (no CRS)")
    if name in ("dsm.tif", "dtm.tif") and bands > 2:
        problems.append(f"{name} must have at most 2 bands")
    return problems


def forget_marker(prefix: str) -> None:
    """The temporary folder's uuid is spent (its files stay for the worker)."""
    storage.delete_object(prefix + _MARKER)


def delete_prefix(prefix: str) -> None:
    storage.delete_prefix(prefix)
    storage.delete_object(_claim_key(prefix))


# ------------------------------------------------------------------ worker side

def join_chunks(prefix: str, key: str) -> int:
    """Chunks `prefix<offset>` joined in offset order into `key`, streamed; bytes written."""
    client = aws.s3()
    parts = sorted((o for o in iter_objects(client, _bucket(), prefix) if o["Key"][len(prefix):].isdigit()),
                   key=lambda o: int(o["Key"][len(prefix):]))
    total = sum(p["Size"] for p in parts)
    with S3MultipartWriter(client, _bucket(), key, ZIP_CONTENT_TYPE if key.endswith(".zip") else None,
                           assets.part_size_for(total)) as writer:
        for part in parts:
            body = client.get_object(Bucket=_bucket(), Key=part["Key"])["Body"]
            for block in iter(lambda: body.read(1024 * 1024), b""):
                writer.write(block)
    storage.delete_prefix(prefix)
    return total


def copy_object(source: str, key: str) -> None:
    """Server-side copy (multipart UploadPartCopy for large objects): no byte through us."""
    aws.s3().copy({"Bucket": _bucket(), "Key": source}, _bucket(), key)


def pack_external(prefix: str, key: str) -> None:
    """The external files as an all.zip with WebODM's asset paths (stored, not recompressed),
    streamed from their objects (chunks included) with bounded memory."""
    client = aws.s3()
    files = external_files(prefix)
    total = sum(size for parts in files.values() for _, size in parts)
    with S3MultipartWriter(client, _bucket(), key, ZIP_CONTENT_TYPE, assets.part_size_for(total)) as writer:
        with zipfile.ZipFile(writer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name in sorted(files):
                info = zipfile.ZipInfo(EXTERNAL_PATHS[name], date_time=(1980, 1, 1, 0, 0, 0))
                size = sum(s for _, s in files[name])
                with archive.open(info, "w", force_zip64=size > 2**31) as out:
                    for part, _ in files[name]:
                        body = client.get_object(Bucket=_bucket(), Key=part)["Body"]
                        for block in iter(lambda: body.read(1024 * 1024), b""):
                            out.write(block)


@dataclass
class Backup:
    fields: dict
    images: int


def _backup_names(reader: S3RangeReader) -> list[zipfile.ZipInfo] | None:
    try:
        with zipfile.ZipFile(reader) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise assets.InvalidZipError(str(exc)) from exc


def is_backup(infos: list[zipfile.ZipInfo]) -> bool:
    """WebODM's rule: a zip with `data/backup.json` and an `assets/` folder is a task backup."""
    names = [i.filename for i in infos]
    return BACKUP_JSON in names and any(n.startswith("assets/") for n in names)


def backup_key(task_id: str) -> str:
    return storage.task_prefix(task_id) + "import/backup.zip"


def unpack_backup(task_id: str) -> Backup | None:
    """A backup zip in all.zip becomes the task's images, an all.zip of its `assets/` and the
    fields of its `data/backup.json`; None for a plain all.zip. The backup is kept under
    `import/backup.zip` until `forget_backup`, so a run killed half way starts again from it."""
    from .assets import _RawZipCopier

    client, bucket = aws.s3(), _bucket()
    prefix = storage.task_prefix(task_id)
    source = backup_key(task_id)
    if not _exists(source):
        reader = S3RangeReader(client, bucket, prefix + "all.zip", cache_blocks=1)
        try:
            if not is_backup(_backup_names(reader)):
                return None
        finally:
            reader.close()
        copy_object(prefix + "all.zip", source)
    reader = S3RangeReader(client, bucket, source, cache_blocks=1)
    try:
        with zipfile.ZipFile(reader) as archive:
            infos = archive.infolist()
            fields = _read_json(archive, BACKUP_JSON)
            images = 0
            members = []
            for info in infos:
                name = info.filename
                if info.is_dir():
                    continue
                if name.startswith("assets/"):
                    inner = name[len("assets/"):]
                    if inner and inner != "all.zip":
                        members.append((inner, info))
                elif "/" not in name:
                    _put_member(archive, info, storage.image_key(task_id, safe_filename(name)))
                    images += 1
            total = sum(i.compress_size for _, i in members) + 200 * len(members)
            with S3MultipartWriter(client, bucket, prefix + "all.zip", ZIP_CONTENT_TYPE,
                                   assets.part_size_for(total)) as out:
                copier = _RawZipCopier(out, reader)
                for inner, info in members:
                    copier.add(inner, info)
                copier.finish()
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise assets.InvalidZipError(str(exc)) from exc
    finally:
        reader.close()
    return Backup(fields=fields if isinstance(fields, dict) else {}, images=images)


def forget_backup(task_id: str) -> None:
    storage.delete_object(backup_key(task_id))


def _put_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> None:
    client = aws.s3()
    with archive.open(info) as src, S3MultipartWriter(client, _bucket(), key, None,
                                                      assets.part_size_for(info.file_size)) as out:
        for block in iter(lambda: src.read(1024 * 1024), b""):
            out.write(block)


def _read_json(archive: zipfile.ZipFile, name: str):
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_JSON_BYTES:
        return None
    try:
        return json.loads(archive.read(info))
    except (ValueError, UnicodeDecodeError):
        log.warning("%s in an imported zip is not JSON", name)
        return None


# WebODM's backup.json (`write_backup_file`) holds these task fields; `read_backup_file` restores
# them. Each is validated as a PATCH would validate it; an invalid one is left out.
RESTORED_FIELDS = ("name", "options", "public", "public_edit", "potree_scene", "tags", "resize_to", "crop")


def restored_fields(backup: dict) -> dict:
    """The fields of a backup.json that a task takes back (`created_at` in epoch seconds, as
    WebODM writes it, or ISO text; `tags` a list or space-separated text)."""
    from datetime import datetime, timezone

    from pydantic import ValidationError

    from .models import TaskWrite

    restored: dict = {}
    for field in RESTORED_FIELDS:
        if field not in backup:
            continue
        try:
            value = TaskWrite.model_validate({field: backup[field]}).model_dump(mode="json")[field]
        except ValidationError:
            log.warning("backup.json field %s refused", field)
            continue
        restored[field] = value
    processing_time = backup.get("processing_time")
    if isinstance(processing_time, int) and not isinstance(processing_time, bool) \
            and -1 <= processing_time < 2**53:
        restored["processing_time"] = processing_time
    created = backup.get("created_at")
    try:
        if isinstance(created, (int, float)) and not isinstance(created, bool):
            moment = datetime.fromtimestamp(created, timezone.utc)
        elif isinstance(created, str):
            moment = datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(timezone.utc)
        else:
            moment = None
    except (ValueError, OverflowError, OSError):
        moment = None
    if moment is not None and 1970 <= moment.year <= 9999:
        restored["created_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return restored


CONSOLE_TXT = "data/console_output.txt"


def backup_console(task_id: str, batch: int = 1000):
    """The backup's console (`data/console_output.txt`), in batches of lines; nothing when absent."""
    reader = S3RangeReader(aws.s3(), _bucket(), backup_key(task_id), cache_blocks=1)
    try:
        with zipfile.ZipFile(reader) as archive:
            try:
                info = archive.getinfo(CONSOLE_TXT)
            except KeyError:
                return
            with archive.open(info) as raw:
                lines: list[str] = []
                for line in io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None):
                    lines.append(line.rstrip("\n"))
                    if len(lines) >= batch:
                        yield lines
                        lines = []
                if lines:
                    yield lines
    finally:
        reader.close()


def images_json_count(task_id: str) -> int | None:
    """WebODM's images_count of an import: the length of `images.json` among the assets."""
    key = storage.task_prefix(task_id) + "assets/images.json"
    size = storage.object_size(key)
    if size is None or size > MAX_JSON_BYTES:
        return None
    try:
        images = json.loads(storage.read_object(key))
    except (ValueError, UnicodeDecodeError):
        log.warning("Cannot read images count from imported task %s", task_id)
        return None
    return len(images) if isinstance(images, list) else None


def download(url: str, key: str, progress: Callable[[int, int | None], None],
             has_time: Callable[[], bool]) -> int:
    """GET `url` under the SSRF policy and stream it into `key` (multipart, bounded memory).
    Raises netguard.RefusedURL / FetchError, DownloadFailed."""
    from . import netguard

    with netguard.open_public_url(url, allow_private=settings().import_allow_private) as answer:
        if answer.status >= 400:
            raise DownloadFailed(f"The server answered {answer.status}")
        total = answer.length
        written = 0
        with S3MultipartWriter(aws.s3(), _bucket(), key, ZIP_CONTENT_TYPE,
                               assets.part_size_for(total or 0)) as writer:
            while True:
                block = answer.read(1024 * 1024)
                if not block:
                    break
                writer.write(block)
                written += len(block)
                progress(written, total)
                if not has_time():
                    raise DownloadFailed("The download did not finish within the worker's time")
    return written


class DownloadFailed(Exception):
    pass
