"""Task assets: WebODM's asset map, download names, and the completion step.

Layout of one task in the bucket (`task_prefix` = ``tasks/<task id>/``):

- ``images/<name>``  input images (counted in the task size, never touched here)
- ``all.zip``        the node's all.zip as downloaded (served as the ``all.zip`` asset)
- ``assets/<path>``  every file of all.zip, extracted (``.../assets/{path}`` and the
  single-file downloads)
- ``zips/<name>``    the folder assets (``textured_model.zip``, ``*_tiles.zip``, ...)

`extract_assets` is WebODM's ``extract_assets_and_complete`` (`app/models/task.py`) minus
the raster work: it streams all.zip out of S3 with ranged reads, never holding a whole
file or folder in memory. Folder zips are built by copying each member's compressed
bytes as they are in all.zip (no decompress/recompress); their CRCs were verified while
extracting the same members.
"""
from __future__ import annotations

import json
import logging
import math
import mimetypes
import posixpath
import re
import shutil
import struct
import threading
import zipfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .paths import safe_relative_path
from .s3stream import COPY_CHUNK, MiB, S3_MAX_PARTS, S3MultipartWriter, S3RangeReader, delete_keys, iter_objects

logger = logging.getLogger(__name__)

PART_SIZE = 8 * MiB            # multipart part size (and the "small member" limit)
SMALL_MEMBER = PART_SIZE       # members up to this size are read whole and put_object'ed
SMALL_INFLIGHT_BYTES = 2 * PART_SIZE   # bytes of small members waiting for / in upload
STATS_PATH = "odm_report/stats.json"
MAX_STATS_BYTES = 16 * MiB
S3_MAX_KEY_BYTES = 1024


class InvalidZipError(Exception):
    """all.zip is missing, corrupt or unreadable as a zip. ``str()`` is WebODM's
    failure message ("Invalid zip file"); ``detail`` says what was wrong."""

    def __init__(self, detail: str = ""):
        super().__init__("Invalid zip file")
        self.detail = detail


# -- the asset map -------------------------------------------------------------------------

@dataclass(frozen=True)
class AssetSpec:
    """One downloadable asset. Exactly one of: `path` (a file under assets/), `folder`
    (a folder under assets/, served as a zip built at completion, minus files whose
    base name is in `exclude`), or neither (``all.zip``: the node's zip itself)."""
    name: str
    path: str | None = None
    folder: str | None = None
    exclude: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.path is not None:
            return "file"
        if self.folder is not None:
            return "folder"
        return "all"


# WebODM's Task.ASSETS_MAP, in its order (`app/models/task.py`).
ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec("all.zip"),
    AssetSpec("orthophoto.tif", path="odm_orthophoto/odm_orthophoto.tif"),
    AssetSpec("orthophoto.png", path="odm_orthophoto/odm_orthophoto.png"),
    AssetSpec("orthophoto.mbtiles", path="odm_orthophoto/odm_orthophoto.mbtiles"),
    AssetSpec("orthophoto.kmz", path="odm_orthophoto/odm_orthophoto.kmz"),
    AssetSpec("cutline.gpkg", path="odm_orthophoto/cutline.gpkg"),
    AssetSpec("georeferenced_model.las", path="odm_georeferencing/odm_georeferenced_model.las"),
    AssetSpec("georeferenced_model.laz", path="odm_georeferencing/odm_georeferenced_model.laz"),
    AssetSpec("georeferenced_model.ply", path="odm_georeferencing/odm_georeferenced_model.ply"),
    AssetSpec("georeferenced_model.csv", path="odm_georeferencing/odm_georeferenced_model.csv"),
    AssetSpec("textured_model.zip", folder="odm_texturing",
              exclude=("odm_textured_model_geo.glb",)),
    AssetSpec("textured_model.glb", path="odm_texturing/odm_textured_model_geo.glb"),
    AssetSpec("3d_tiles_model.zip", folder="3d_tiles/model"),
    AssetSpec("3d_tiles_pointcloud.zip", folder="3d_tiles/pointcloud"),
    AssetSpec("dtm.tif", path="odm_dem/dtm.tif"),
    AssetSpec("dsm.tif", path="odm_dem/dsm.tif"),
    AssetSpec("dtm_tiles.zip", folder="dtm_tiles"),
    AssetSpec("dsm_tiles.zip", folder="dsm_tiles"),
    AssetSpec("orthophoto_tiles.zip", folder="orthophoto_tiles"),
    AssetSpec("cameras.json", path="cameras.json"),
    AssetSpec("shots.geojson", path="odm_report/shots.geojson"),
    AssetSpec("report.pdf", path="odm_report/report.pdf"),
    AssetSpec("ground_control_points.geojson",
              path="odm_georeferencing/ground_control_points.geojson"),
)
ASSETS_BY_NAME: dict[str, AssetSpec] = {spec.name: spec for spec in ASSETS}


def _norm_prefix(task_prefix: str) -> str:
    return task_prefix if task_prefix.endswith("/") else task_prefix + "/"


def asset_key(task_prefix: str, asset_name: str) -> str | None:
    """The S3 key serving download `asset_name`, or None for an unknown name."""
    spec = ASSETS_BY_NAME.get(asset_name)
    if spec is None:
        return None
    prefix = _norm_prefix(task_prefix)
    if spec.kind == "all":
        return prefix + "all.zip"
    if spec.kind == "file":
        return prefix + "assets/" + spec.path
    return prefix + "zips/" + spec.name


def download_filename(task_name: str | None, asset_name: str) -> str:
    """WebODM's default download name: "My Task" + "orthophoto.tif" ->
    "My-Task-orthophoto.tif"; no name -> the asset name."""
    name = task_name or ""
    cleaned = re.sub(r"[^0-9A-Za-z_-]+", "", name.replace(" ", "-").replace("/", "-"))
    # As WebODM: the separator depends on the original name, then "-" runs collapse.
    filename = cleaned + ("-" if name else "") + asset_name
    return re.sub(r"-{2,}", "-", filename)


# Built-in table only (not /etc/mime.types), so Lambda and laptops agree; plus the
# geospatial / 3D types ODM produces.
_MIME = mimetypes.MimeTypes()
for _ext, _type in {
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".obj": "model/obj",
    ".mtl": "model/mtl",
    ".geojson": "application/geo+json",
    ".kmz": "application/vnd.google-earth.kmz",
    ".kml": "application/vnd.google-earth.kml+xml",
    ".gpkg": "application/geopackage+sqlite3",
    ".mbtiles": "application/vnd.sqlite3",
    ".las": "application/vnd.las",
    ".laz": "application/vnd.laszip",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".tfw": "text/plain",
    ".wld": "text/plain",
    ".dxf": "image/vnd.dxf",
}.items():
    _MIME.add_type(_type, _ext)


def _guess_type(name: str) -> str | None:
    return _MIME.guess_type(name, strict=False)[0]


def content_type_for(name: str) -> str:
    """Content-Type for a download named `name` (WebODM: guess, else application/zip)."""
    return _guess_type(name) or "application/zip"


def _member_content_type(path: str) -> str:
    return _guess_type(path) or "application/octet-stream"


# -- extraction ------------------------------------------------------------------------------

@dataclass
class ExtractResult:
    available_assets: list[str]
    size_bytes: int
    statistics: dict
    files: int = 0                                      # files extracted under assets/
    skipped: list[str] = field(default_factory=list)    # unsafe member names left out


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError,
               NotImplementedError, struct.error, ValueError)


def _plan_members(infos: list[zipfile.ZipInfo], key_prefix: str
                  ) -> tuple[list[tuple[str, zipfile.ZipInfo]], list[str]]:
    """[(relative path, info)] of the files to extract, in archive order, after
    dropping unsafe names and lifting a single top-level folder (WebODM §7.6)."""
    entries: list[tuple[str, zipfile.ZipInfo]] = []
    skipped: list[str] = []
    for info in infos:
        path = safe_relative_path(info.filename)
        if path is None:
            skipped.append(info.filename)
            continue
        entries.append((path, info))

    tops = {path.split("/", 1)[0] for path, _ in entries}
    top_level_file = any("/" not in path for path, _ in entries)
    if len(tops) == 1 and not top_level_file:
        top = next(iter(tops))
        if top != "odm_orthophoto":
            cut = len(top) + 1
            entries = [(path[cut:], info) for path, info in entries]

    files: dict[str, zipfile.ZipInfo] = {}
    for path, info in entries:
        if not path or path.endswith("/"):
            continue  # directory entries
        if len((key_prefix + path).encode("utf-8")) > S3_MAX_KEY_BYTES:
            skipped.append(info.filename)
            continue
        files.pop(path, None)
        files[path] = info  # a repeated name: the last one wins, as with extractall
    ordered = sorted(files.items(), key=lambda item: item[1].header_offset)
    return ordered, skipped


def part_size_for(size: int) -> int:
    """PART_SIZE, or more when needed to stay within S3's 10,000 parts."""
    need = math.ceil(size / (S3_MAX_PARTS - 100)) if size else 0
    return max(PART_SIZE, math.ceil(need / MiB) * MiB)


class _BoundedUploader:
    """put_object from a thread pool, with a cap on the bytes waiting in memory."""

    def __init__(self, s3_client, bucket: str, max_workers: int, max_bytes: int):
        self._s3 = s3_client
        self._bucket = bucket
        self._pool = ThreadPoolExecutor(max(1, max_workers), thread_name_prefix="asset-put")
        self._max_bytes = max_bytes
        self._max_items = max(1, max_workers) * 4
        self._cond = threading.Condition()
        self._bytes = 0
        self._items = 0
        self._pending: set[Future] = set()
        self._error: BaseException | None = None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        size = len(data)
        with self._cond:
            while self._error is None and self._items > 0 and (
                    self._bytes + size > self._max_bytes or self._items >= self._max_items):
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._bytes += size
            self._items += 1
        fut = self._pool.submit(self._s3.put_object, Bucket=self._bucket, Key=key,
                                Body=data, ContentType=content_type)
        with self._cond:
            self._pending.add(fut)
        fut.add_done_callback(lambda f, n=size: self._done(f, n))

    def _done(self, fut: Future, size: int) -> None:
        with self._cond:
            self._bytes -= size
            self._items -= 1
            self._pending.discard(fut)
            if not fut.cancelled() and fut.exception() is not None and self._error is None:
                self._error = fut.exception()
            self._cond.notify_all()

    def finish(self) -> None:
        """Wait for every upload; raise the first failure."""
        with self._cond:
            while self._items > 0:
                self._cond.wait()
            if self._error is not None:
                raise self._error

    def close(self) -> None:
        with self._cond:
            pending = list(self._pending)
        for fut in pending:
            fut.cancel()
        self._pool.shutdown(wait=True)


def _open_zip(reader: S3RangeReader) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(reader)
    except _ZIP_ERRORS as exc:
        raise InvalidZipError(f"cannot read the zip directory: {exc}") from exc


def _extract_members(zf: zipfile.ZipFile, s3_client, bucket: str, assets_prefix: str,
                     members: list[tuple[str, zipfile.ZipInfo]], max_workers: int
                     ) -> bytes | None:
    """Copy every member to assets/; returns the bytes of odm_report/stats.json if any."""
    stats: bytes | None = None
    uploader = _BoundedUploader(s3_client, bucket, max_workers, SMALL_INFLIGHT_BYTES)
    try:
        for path, info in members:
            if info.flag_bits & 0x1:
                raise InvalidZipError(f"{info.filename} is encrypted")
            key = assets_prefix + path
            ctype = _member_content_type(path)
            try:
                if info.file_size <= SMALL_MEMBER:
                    data = zf.read(info)  # checks the CRC
                    if path == STATS_PATH:
                        stats = data
                    uploader.put(key, data, ctype)
                else:
                    with S3MultipartWriter(s3_client, bucket, key, ctype,
                                           part_size_for(info.file_size)) as out, \
                            zf.open(info) as src:
                        shutil.copyfileobj(src, out, COPY_CHUNK)
                    if path == STATS_PATH and info.file_size <= MAX_STATS_BYTES:
                        stats = zf.read(info)
            except _ZIP_ERRORS as exc:
                raise InvalidZipError(f"{info.filename}: {exc}") from exc
        uploader.finish()
    finally:
        uploader.close()
    return stats


# Zip record layouts (APPNOTE.TXT 4.3).
_LOCAL = struct.Struct("<IHHHHHIIIHH")           # local file header, 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")   # central directory header, 46 bytes
_EOCD = struct.Struct("<IHHHHIIH")               # end of central directory, 22 bytes
_EOCD64 = struct.Struct("<IQHHIIQQQQ")           # zip64 end of central directory, 56 bytes
_EOCD64_LOC = struct.Struct("<IIQI")             # zip64 end of central directory locator
_U32 = 0xFFFFFFFF                # "see the ZIP64 record" sentinels
_U16 = 0xFFFF
_ZIP64_LIMIT = _U32              # sizes/offsets from here on go to ZIP64 fields
_ZIP64_COUNT_LIMIT = _U16        # entry counts from here on go to the ZIP64 end record


def _dos_datetime(date_time: tuple) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time[:6]
    if year < 1980:
        year, month, day, hour, minute, second = 1980, 1, 1, 0, 0, 0
    year = min(year, 2107)
    return (((year - 1980) << 9) | (month << 5) | day,
            (hour << 11) | (minute << 5) | (second // 2))


class _RawZipCopier:
    """Writes a new zip whose members are copied, still compressed, from another zip.

    Sizes and CRCs come from the source's central directory, so local headers carry
    them directly (no data descriptors); ZIP64 records are used only when needed.
    """

    def __init__(self, out, source: S3RangeReader):
        self._out = out
        self._src = source
        self._offset = 0
        self._central: list[bytes] = []

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._offset += len(data)

    def add(self, name: str, info: zipfile.ZipInfo) -> None:
        src = self._src
        src.seek(info.header_offset)
        header = src.read(_LOCAL.size)
        if len(header) != _LOCAL.size or header[:4] != b"PK\x03\x04":
            raise InvalidZipError(f"{info.filename}: bad local header")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        data_start = info.header_offset + _LOCAL.size + name_len + extra_len

        try:
            encoded, utf8 = name.encode("ascii"), False
        except UnicodeEncodeError:
            encoded, utf8 = name.encode("utf-8"), True
        flags = (info.flag_bits & 0x06) | (0x800 if utf8 else 0)  # keep deflate level bits
        date, time = _dos_datetime(info.date_time)
        csize, usize = info.compress_size, info.file_size
        big = csize >= _ZIP64_LIMIT or usize >= _ZIP64_LIMIT
        version = 45 if big else 20
        local_extra = struct.pack("<HHQQ", 1, 16, usize, csize) if big else b""
        offset = self._offset
        self._write(_LOCAL.pack(0x04034B50, version, flags, info.compress_type, time, date,
                                info.CRC, _U32 if big else csize, _U32 if big else usize,
                                len(encoded), len(local_extra)) + encoded + local_extra)

        src.seek(data_start)
        left = csize
        while left:
            chunk = src.read(min(COPY_CHUNK, left))
            if not chunk:
                raise InvalidZipError(f"{info.filename}: truncated data")
            self._write(chunk)
            left -= len(chunk)

        z64: list[int] = []
        if big:
            z64 += [usize, csize]
        if offset >= _ZIP64_LIMIT:
            z64.append(offset)
            version = 45
        central_extra = struct.pack(f"<HH{len(z64)}Q", 1, 8 * len(z64), *z64) if z64 else b""
        self._central.append(_CENTRAL.pack(
            0x02014B50, (3 << 8) | version, version, flags, info.compress_type, time, date,
            info.CRC, _U32 if big else csize, _U32 if big else usize, len(encoded),
            len(central_extra), 0, 0, 0, (0o100644 << 16),
            _U32 if offset >= _ZIP64_LIMIT else offset)
            + encoded + central_extra)

    def finish(self) -> None:
        cd_offset = self._offset
        for record in self._central:
            self._write(record)
        cd_size = self._offset - cd_offset
        count = len(self._central)
        if count >= _ZIP64_COUNT_LIMIT or cd_size >= _ZIP64_LIMIT or cd_offset >= _ZIP64_LIMIT:
            eocd64_offset = self._offset
            self._write(_EOCD64.pack(0x06064B50, _EOCD64.size - 12, (3 << 8) | 45, 45, 0, 0,
                                     count, count, cd_size, cd_offset))
            self._write(_EOCD64_LOC.pack(0x07064B50, 0, eocd64_offset, 1))
        n = _U16 if count >= _ZIP64_COUNT_LIMIT else count
        self._write(_EOCD.pack(0x06054B50, 0, 0, n, n,
                               _U32 if cd_size >= _ZIP64_LIMIT else cd_size,
                               _U32 if cd_offset >= _ZIP64_LIMIT else cd_offset, 0))


def _folder_members(spec: AssetSpec, members: list[tuple[str, zipfile.ZipInfo]]
                    ) -> list[tuple[str, zipfile.ZipInfo]]:
    base = spec.folder + "/"
    return [(path[len(base):], info) for path, info in members
            if path.startswith(base) and posixpath.basename(path) not in spec.exclude]


def _build_folder_zip(s3_client, bucket: str, key: str, reader: S3RangeReader,
                      members: list[tuple[str, zipfile.ZipInfo]]) -> None:
    total = sum(info.compress_size for _, info in members) + 200 * len(members)
    with S3MultipartWriter(s3_client, bucket, key, "application/zip",
                           part_size_for(total)) as out:
        copier = _RawZipCopier(out, reader)
        for name, info in members:
            copier.add(name, info)
        copier.finish()


def _number(value):
    """A number DynamoDB can store (finite, at most 38 digits, below 1e125), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if abs(value) >= 1e125 or (isinstance(value, int) and len(str(abs(value))) > 38):
        return None
    if isinstance(value, float) and value != 0 and abs(value) < 1e-125:
        return 0.0
    return value


MAX_DATE_CHARS = 64


def _date(value):
    """A start or end date as ODM writes it (text), else None: bounded like every task field."""
    return value if isinstance(value, str) and len(value) <= MAX_DATE_CHARS else None


def _dig(obj, *keys):
    for k in keys:
        if isinstance(k, int):
            if not isinstance(obj, list) or len(obj) <= k:
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[k] if isinstance(k, int) else obj.get(k)
    return obj


def parse_statistics(raw: bytes | None) -> dict:
    """WebODM's task statistics from ODM's odm_report/stats.json ({} if absent/malformed).

    Points follow WebODM: the dense point cloud count when `point_cloud_statistics.dense`
    is set, else `reconstruction_statistics.reconstructed_points_count`; when `dense` is
    absent altogether (older ODM) the point cloud count is used if present.
    """
    if raw is None:
        return {}
    try:
        j = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        logger.warning("malformed %s", STATS_PATH)
        return {}
    if not isinstance(j, dict):
        return {}
    pc = _dig(j, "point_cloud_statistics")
    pc_count = _number(_dig(j, "point_cloud_statistics", "stats", "statistic", 0, "count"))
    sparse_count = _number(_dig(j, "reconstruction_statistics", "reconstructed_points_count"))
    if isinstance(pc, dict) and pc.get("dense"):
        points = pc_count
    elif isinstance(pc, dict) and "dense" in pc:
        points = sparse_count
    else:
        points = pc_count if pc_count is not None else sparse_count
    if isinstance(points, float) and points.is_integer():
        points = int(points)

    spatial_refs = []
    if _dig(j, "reconstruction_statistics", "has_gps"):
        spatial_refs.append("gps")
    gcp_errors = _dig(j, "gcp_errors")
    if _dig(j, "reconstruction_statistics", "has_gcp") and isinstance(gcp_errors, dict) \
            and "average_error" in gcp_errors:
        spatial_refs.append("gcp")
    if "align" in j:
        spatial_refs.append("alignment")

    return {
        "pointcloud": {"points": points},
        "gsd": _number(_dig(j, "odm_processing_statistics", "average_gsd")),
        "area": _number(_dig(j, "processing_statistics", "area")),
        "start_date": _date(_dig(j, "processing_statistics", "start_date")),
        "end_date": _date(_dig(j, "processing_statistics", "end_date")),
        "spatial_refs": spatial_refs,
    }


def extract_assets(s3_client, bucket: str, task_prefix: str, *, max_workers: int = 8
                   ) -> ExtractResult:
    """Turn ``{prefix}all.zip`` into ``{prefix}assets/...`` and ``{prefix}zips/...``.

    Raises InvalidZipError for a missing or corrupt all.zip (the task then fails with
    "Invalid zip file"); S3 errors propagate unchanged (retry later). Safe to run again:
    objects from an earlier completion are removed first.
    """
    prefix = _norm_prefix(task_prefix)
    assets_prefix = prefix + "assets/"
    zips_prefix = prefix + "zips/"
    zip_key = prefix + "all.zip"

    # 1. One listing: stale outputs to delete, and the size of the images.
    stale: list[str] = []
    images_bytes = 0
    zip_seen = False
    for obj in iter_objects(s3_client, bucket, prefix):
        key = obj["Key"]
        if key.startswith(assets_prefix) or key.startswith(zips_prefix):
            stale.append(key)
        elif key.startswith(prefix + "images/"):
            images_bytes += int(obj.get("Size", 0))
        elif key == zip_key:
            zip_seen = True
    if stale:
        delete_keys(s3_client, bucket, stale)
    if not zip_seen:
        raise InvalidZipError(f"s3://{bucket}/{zip_key} does not exist")

    # Members are read in archive order, so one cached block (+ one read-ahead) suffices.
    reader = S3RangeReader(s3_client, bucket, zip_key, cache_blocks=1)
    try:
        zf = _open_zip(reader)
        with zf:
            # 2. Which members, under which names.
            members, skipped = _plan_members(zf.infolist(), assets_prefix)
            for name in skipped:
                logger.warning("all.zip member skipped (unsafe or too long name): %r", name)

            # 3. Every file to assets/.
            stats_raw = _extract_members(zf, s3_client, bucket, assets_prefix, members,
                                         max_workers)

            # 4. Folder assets as zips.
            built: set[str] = set()
            for spec in ASSETS:
                if spec.kind != "folder":
                    continue
                folder_members = _folder_members(spec, members)
                if folder_members:
                    _build_folder_zip(s3_client, bucket, zips_prefix + spec.name, reader,
                                      folder_members)
                    built.add(spec.name)
    finally:
        reader.close()

    # 5. available_assets in WebODM's order.
    paths = {path for path, _ in members}
    available = [spec.name for spec in ASSETS
                 if spec.kind == "all"
                 or (spec.kind == "file" and spec.path in paths)
                 or (spec.kind == "folder" and spec.name in built)]

    # 6./7. Size (images + extracted files) and statistics.
    size = images_bytes + sum(info.file_size for _, info in members)
    return ExtractResult(available_assets=available, size_bytes=size,
                         statistics=parse_statistics(stats_raw), files=len(members),
                         skipped=skipped)
