"""Pictures of a task: its thumbnail, and its input images as thumbnails or downloads
(WebODM's `TaskThumbnail.get`, `imageuploads.Thumbnail.get` and `ImageDownload.get`).

Who may call them is WebODM's rule for task files (maps §4): a viewer of the task's project,
or anyone, anonymous included, for a public task or a task of a public project; anything else
is 404 before any work. Images come from `tasks/<task id>/images/` in S3 (only there: WebODM
also serves any other file of the task folder through these routes, Aloft does not).
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from chalice import Blueprint, Response

from .. import access, exports, storage
from ..apidoc import INT, PICTURE, REDIRECT, STR, Param, doc
from ..errors import ApiError, InvalidInput, not_found
from ..paths import safe_relative_path
from .common import BODY_CONTENT_TYPES, optional_user, query_params

bp = Blueprint(__name__)
ONE = "/api/projects/{project_id}/tasks/{task_id}"
THUMBNAIL_DEFAULT, THUMBNAIL_MAX = 256, 1024
# An input image is read whole into the API function's memory (1024 MB) to be decoded.
MAX_SOURCE_IMAGE_BYTES = 128 * 1024 * 1024
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")


def readable(project_id: str, task_id: str) -> dict:
    return access.readable_task(optional_user(bp.current_request), project_id, task_id)


def disposition(kind: str, filename: str) -> str:
    """`attachment; filename=<name>` as WebODM writes it for plain names; other names quoted,
    with the UTF-8 form beside an ASCII one (RFC 6266)."""
    if _PLAIN_NAME.match(filename):
        return f"{kind}; filename={filename}"
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode() or "download"
    ascii_name = re.sub(r'["\\\r\n;]', "", ascii_name)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def redirect(url: str) -> Response:
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


def _size(text: str | None) -> int:
    """WebODM: `int(size)`, 256 when that fails, then clamped to 1..1024."""
    try:
        value = int(text) if text is not None else THUMBNAIL_DEFAULT
    except (TypeError, ValueError):
        value = THUMBNAIL_DEFAULT
    return max(1, min(THUMBNAIL_MAX, value))


@bp.route(ONE + "/thumbnail", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("The task's thumbnail (orthophoto)", {200: PICTURE}, auth="optional", tags=("pictures",),
     query=(Param("size", INT, "1..1024 (clamped; not a number: 256)"),),
     description="A square PNG, or WEBP when `Accept` contains `image/webp`, of the orthophoto "
                 "letterboxed (transparent where it has alpha); with a task `crop`, the crop's box. "
                 "404 without an orthophoto, or when it has fewer than 3 bands.")
def task_thumbnail(project_id, task_id):
    task = readable(project_id, task_id)
    key = exports.source_key(task, "orthophoto")
    if key is None:
        raise not_found()
    size = _size(query_params(bp.current_request).get("size"))
    webp = "image/webp" in (bp.current_request.headers.get("accept") or "")
    from rasterio.errors import RasterioIOError

    from ..rasters import thumbnail

    try:
        picture = thumbnail.render(key, size, webp, exports.crop_geometry(task))
    except RasterioIOError:
        picture = None  # gone from S3, or not a raster GDAL reads
    if picture is None:
        raise not_found()
    return Response(body=picture, status_code=200, headers={
        "Content-Type": "image/webp" if webp else "image/png",
        "Content-Disposition": "inline", "Cache-Control": "no-store"})


def _image_key(task: dict) -> tuple[str, str]:
    """(S3 key, base name) of the input image the greedy `{file+}` names; 400 for a path that
    leaves the images folder."""
    params = bp.current_request.uri_params or {}
    raw = params.get("file", params.get("file+", ""))  # chalice's test client keeps the "+"
    path = safe_relative_path(raw, allow_directory=False)
    if path is None:
        raise ApiError(400, {"detail": "Invalid file path"})
    return storage.image_key(task["id"], path), path.rsplit("/", 1)[-1]


_THUMBNAIL_QUERY = (
    Param("size", INT, "Longest side, >= 1 (default 512); never more than the image's"),
    Param("quality", INT, "JPEG quality 0..100 (default 75)"),
    Param("center_x", {"type": "number"}, "-0.5..1.5 (default 0.5)"),
    Param("center_y", {"type": "number"}, "-0.5..1.5 (default 0.5)"),
    Param("zoom", {"type": "number"}, "0.1..10 (default 1)"),
    Param("draw_point", STR, "`x,y` relative to the image (repeatable)"),
    Param("point_color", STR, "6 hex digits (repeatable, default ffffff)"),
    Param("point_radius", {"type": "number"}, "Percent of the longest side (repeatable, default 1)"),
)


@bp.route(ONE + "/images/thumbnail/{file+}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("A thumbnail of an input image", {200: PICTURE}, auth="optional", tags=("pictures",),
     query=_THUMBNAIL_QUERY,
     description="A progressive JPEG, never larger than the image. Any invalid parameter: 400 "
                 '`["Invalid query parameters"]`. An answer is at most 4.5 MB (Lambda\'s response '
                 "cap): a larger one is scaled down until it fits.")
def image_thumbnail(project_id, task_id):
    from .. import images

    task = readable(project_id, task_id)
    key, _ = _image_key(task)
    size = storage.object_size(key)
    if size is None:
        raise not_found()
    params = bp.current_request.query_params
    lists = {name: params.getlist(name) for name in params} if params else {}
    options = images.parse_options(query_params(bp.current_request), lists)
    if size > MAX_SOURCE_IMAGE_BYTES:
        raise InvalidInput(f"Image too large for a thumbnail (more than {MAX_SOURCE_IMAGE_BYTES} bytes)")
    picture = images.render(storage.read_object(key), options)
    return Response(body=picture, status_code=200,
                    headers={"Content-Type": "image/jpeg", "Content-Disposition": "inline"})


@bp.route(ONE + "/images/download/{file+}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Download an input image", {302: REDIRECT, 400: "Detail"}, auth="optional", tags=("pictures",),
     description="302 to a short-lived presigned S3 URL answering the original bytes with "
                 "`Content-Disposition: attachment; filename=<name>`.")
def image_download(project_id, task_id):
    from ..assets import content_type_for

    task = readable(project_id, task_id)
    key, name = _image_key(task)
    if storage.object_size(key) is None:
        raise not_found()
    return redirect(storage.presign_get(key, disposition("attachment", name), content_type_for(name)))
