"""Exports: `POST .../{orthophoto|dsm|dtm|georeferenced_model}/export` and the job routes
`GET /api/workers/check/{id}` and `GET /api/workers/get/{id}` (WebODM's `tiler.Export.post` and
`app/api/workers.py`).

The route validates as WebODM does, in its order and with its messages, then either answers
the synchronous shortcut (the file as it is: `{"url", "filename"}`) or records a job that the
work queue runs (`{"celery_task_id", "filename"}`: WebODM's key, kept for its clients). Unlike
WebODM, a job id is only good for someone who may read its task: to anyone else it is an
unknown id.
"""
from __future__ import annotations

import math

from typing import Optional

from chalice import Blueprint
from pydantic import BaseModel

from .. import access, exports, storage
from ..apidoc import REDIRECT, STR, Param, doc
from ..errors import ApiError, InvalidInput, NotFound, not_found
from ..paths import safe_filename
from .common import BODY_CONTENT_TYPES, optional_user, parse_body, query_params, respond
from .pictures import disposition, redirect

bp = Blueprint(__name__)
ONE = "/api/projects/{project_id}/tasks/{task_id}"
RASTER_FORMATS = ("gtiff", "gtiff-rgb", "jpg", "png", "kmz")
POINT_CLOUD_FORMATS = ("laz", "las", "ply", "csv")
RGB_FORMATS = ("gtiff-rgb", "jpg", "png")
DEM_TYPES = ("dsm", "dtm")
DEM_COLOR_MAP, DEM_HILLSHADE = "viridis", "6"
FIELDS = ("format", "epsg", "proj", "formula", "bands", "rescale", "color_map", "hillshade", "resample")
NOT_READY = {"error": "Task not ready"}


class ExportFile(BaseModel):
    """The file as it is: download it from `url` (add `?filename=`)."""
    url: str
    filename: str


class ExportJob(BaseModel):
    """A job: follow it with workers/check, fetch it with workers/get."""
    celery_task_id: str
    filename: str


class JobState(BaseModel):
    ready: bool
    error: Optional[str] = None
    status: Optional[str] = None
    progress: Optional[float] = None


class JobError(BaseModel):
    error: str


class ExportRequest(BaseModel):
    """WebODM's export fields (JSON, form or multipart); an empty value counts as absent."""
    format: Optional[str] = None
    epsg: Optional[int] = None
    proj: Optional[str] = None
    formula: Optional[str] = None
    bands: Optional[str] = None
    rescale: Optional[str] = None
    color_map: Optional[str] = None
    hillshade: Optional[float] = None
    resample: Optional[float] = None


INVALID_OUTPUT = {"error": "Invalid task output (cannot find valid key)"}


def _fields(body) -> dict[str, str]:
    """The export fields as text; an empty value counts as absent (WebODM)."""
    out = {}
    for name in FIELDS:
        value = body.fields.get(name)
        if value is None or isinstance(value, (dict, list)):
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text != "":
            out[name] = text
    return out


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _color_map_known(name: str) -> bool:
    from ..rasters import colormaps

    return colormaps.is_known(name)


def _formula(task: dict, formula: str, bands: str) -> str:
    """The band expression of a formula for a band order (`auto`: from the orthophoto's band
    descriptions); InvalidInput with WebODM's message otherwise."""
    from ..rasters import formulas

    try:
        if bands == "auto":
            bands, _ = formulas.auto_bands(task.get("orthophoto_bands") or [], formula)
        expr, _ = formulas.lookup_formula(formula, bands)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return expr


def _crs_ok(epsg: int | None = None, proj: str | None = None) -> bool:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_epsg(epsg) if epsg is not None else CRS.from_proj4(proj)
    except (CRSError, ValueError, TypeError):
        return False
    return True


def validate(task: dict, asset: str, raw: dict[str, str]) -> dict:
    """WebODM's checks, first failure wins (maps §2.7 steps 2-12); the job's parameters."""
    is_raster = asset != exports.POINT_CLOUD
    fmt = raw.get("format", "gtiff" if is_raster else "laz")
    if fmt not in (RASTER_FORMATS if is_raster else POINT_CLOUD_FORMATS):
        raise InvalidInput(f"Unsupported format: {fmt}")
    color_map, hillshade = raw.get("color_map"), raw.get("hillshade")
    if asset in DEM_TYPES and fmt != "gtiff":
        color_map = color_map or DEM_COLOR_MAP
        hillshade = hillshade or DEM_HILLSHADE
    if color_map is not None and not _color_map_known(color_map):
        raise InvalidInput("Not a valid color_map value")
    resample = 0.0
    if "resample" in raw:
        try:
            resample = _float(raw["resample"])
        except ValueError:
            raise InvalidInput(f"Invalid resample value: {raw['resample']}") from None
    epsg = None
    if "epsg" in raw:
        try:
            epsg = int(raw["epsg"])
        except ValueError:
            raise InvalidInput(f"Invalid EPSG code: {raw['epsg']}") from None
        if not _crs_ok(epsg=epsg):
            raise InvalidInput(f"Invalid EPSG code: {raw['epsg']}")
    proj = raw.get("proj") if epsg is None else None  # epsg wins
    if proj is not None and not _crs_ok(proj=proj):
        raise InvalidInput(f"Invalid PROJ string: {proj}")
    formula, bands = raw.get("formula"), raw.get("bands")
    if (formula is None) != (bands is None):
        raise InvalidInput("Both formula and bands parameters are required")
    expr = _formula(task, formula, bands) if formula else None
    rescale_text = raw.get("rescale")
    if fmt in RGB_FORMATS and formula and rescale_text is None:
        rescale_text = "-1,1"
    if fmt == "gtiff":
        rescale_text = None
    rescale = None
    if rescale_text is not None:
        try:
            rescale = [_float(v) for v in rescale_text.replace("%2C", ",").split(",")]
        except ValueError:
            raise InvalidInput(f"Invalid rescale value: {rescale_text}") from None
        if len(rescale) != 2:
            raise InvalidInput(f"Invalid rescale value: {rescale_text}")
    shade = None
    if hillshade is not None:
        try:
            shade = _float(hillshade)
        except ValueError:
            shade = -1.0
        if shade < 0:
            raise InvalidInput(f"Invalid hillshade value: {hillshade}")
    return {"format": fmt, "epsg": epsg, "proj": proj, "formula": formula, "expr": expr, "rescale": rescale,
            "color_map": color_map, "hillshade": shade, "resample": resample}


def _extension(fmt: str) -> str:
    return "tif" if fmt in ("gtiff", "gtiff-rgb") else fmt


def export(asset: str, project_id: str, task_id: str):
    from ..assets import download_filename

    request = bp.current_request
    task = access.readable_task(optional_user(request), project_id, task_id)
    params = validate(task, asset, _fields(parse_body(request)))
    source = exports.source_key(task, asset)
    if source is None or storage.object_size(source) is None:
        raise not_found()
    if params["epsg"] is not None and task.get("epsg") is None and not task.get("wkt"):
        raise InvalidInput("Cannot use epsg on non-georeferenced dataset")
    filename = download_filename(task.get("name"), asset) + (
        f"-{params['formula']}" if params["formula"] else "") + "." + _extension(params["format"])
    crop = exports.crop_geometry(task)
    same_crs = params["epsg"] is None or (task.get("epsg") is not None and params["epsg"] == task["epsg"])
    plain = same_crs and params["proj"] is None and crop is None
    base = f"/api/projects/{task['project_id']}/tasks/{task['id']}/download/"
    if asset == exports.POINT_CLOUD:
        if plain and params["format"] == "laz" and params["resample"] == 0:
            return respond({"url": base + "georeferenced_model.laz", "filename": filename})
    elif plain and params["format"] == "gtiff" and params["formula"] is None:
        return respond({"url": base + f"{asset}.tif", "filename": filename})
    job = exports.create(task, asset, {**params, "crop": crop}, filename)
    exports.send(job)  # lost: `workers/check` sends it again
    return respond({"celery_task_id": job["job"], "filename": filename})


_EXPORT_DESCRIPTION = (
    "WebODM's export. Rasters: `format` gtiff (default), gtiff-rgb, jpg, png, kmz; `epsg` or `proj` "
    "reprojection; `formula` with `bands` (may be `auto`); `rescale` `min,max`; DSM/DTM `color_map` "
    "(default viridis) and `hillshade` (default 6) for the picture formats. Point cloud: laz (default), "
    "las, ply, csv; `epsg`/`proj`; `resample` (grid thinning, metres). The file as it is answers "
    '`{"url", "filename"}` at once; anything else is a job: `{"celery_task_id", "filename"}`, followed '
    "with `GET /api/workers/check/{id}` and fetched with `GET /api/workers/get/{id}`.")


def _export_route(asset: str):
    def view(project_id, task_id):
        return export(asset, project_id, task_id)

    view.__name__ = view.__qualname__ = f"export_{asset}"
    view.__doc__ = f"Export the task's {asset}."
    return doc(f"Export the {asset.replace('_', ' ')}", {200: (ExportFile, ExportJob)}, auth="optional",
               tags=("exports",), description=_EXPORT_DESCRIPTION, body=ExportRequest)(view)


for _asset in exports.SOURCES:
    bp.route(f"{ONE}/{_asset}/export", methods=["POST"], content_types=BODY_CONTENT_TYPES)(_export_route(_asset))


# ------------------------------------------------------------------ workers

def _job() -> dict | None:
    """The job the path names, if the caller may read its task (else as if unknown)."""
    params = bp.current_request.uri_params or {}
    job_id = params.get("celery_task_id", params.get("celery_task_id+", ""))  # the test client keeps "+"
    job = exports.get(job_id)
    if job is None or "task_id" not in job:  # a duplicate's job is no export
        return None
    try:
        access.readable_task(optional_user(bp.current_request), job["project_id"], job["task_id"])
    except NotFound:
        return None
    return job


@bp.route("/api/workers/check/{celery_task_id+}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("State of an export job", {200: JobState}, auth="optional", tags=("exports",),
     description='`{"ready": false}` (with `status` and `progress` while it runs; an unknown id too), '
                 '`{"ready": true}`, or `{"ready": true, "error": "..."}`.')
def check_job():
    job = _job()
    if job is not None:
        exports.resend_if_stuck(job)
    return respond(exports.check_body(job))


@bp.route("/api/workers/get/{celery_task_id+}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Download an export job's file", {302: REDIRECT, 200: JobError, 400: "Detail"}, auth="optional", tags=("exports",),
     query=(Param("filename", STR, "The download's file name (default: the export's)"),),
     description='302 to a short-lived presigned S3 URL (`Content-Disposition: attachment; filename=<name>`); '
                 '`{"error": "Task not ready"}` while the job runs or for an unknown id.')
def get_job_result():
    from ..assets import content_type_for

    job = _job()
    if job is None or job.get("state") in ("pending", "running"):
        return respond(NOT_READY)
    if job.get("state") != "done":
        return respond(INVALID_OUTPUT)
    if storage.object_size(job["result"]) is None:
        raise ApiError(400, {"detail": exports.NOT_GENERATED})
    wanted = query_params(bp.current_request).get("filename")
    name = safe_filename(wanted) if wanted else job["filename"]
    return redirect(storage.presign_get(job["result"], disposition("attachment", name), content_type_for(name)))
